// AF_PACKET binding for src/arp: one packet socket bound to one interface and EtherType,
// non-blocking, driven by libuv polling. Frames arrive as Buffers through a JS callback; sends that would
// block return false and a later "writable" callback says when to retry. Every error carries the kernel
// errno (`code` like EPERM, `errno` as a number), the failing syscall and the interface name.
#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

namespace {

// Largest frame we read: an Ethernet MTU frame plus headroom; ARP and NDP frames are far smaller.
constexpr size_t kMaxFrame = 2048;
// Frames handed to JS per readiness event, so a flood cannot starve the event loop.
constexpr int kBatch = 64;

Napi::Error SysError(Napi::Env env, int err, const char* syscall, const std::string& ifname) {
  const char* name = uv_err_name(-err);
  std::string msg = std::string(syscall) + " on " + ifname + ": " + strerror(err);
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, name));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.Set("iface", Napi::String::New(env, ifname));
  return e;
}

class PacketSocket : public Napi::ObjectWrap<PacketSocket> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "PacketSocket",
                       {
                           InstanceMethod("send", &PacketSocket::Send),
                           InstanceMethod("addMembership", &PacketSocket::AddMembership),
                           InstanceMethod("dropMembership", &PacketSocket::DropMembership),
                           InstanceMethod("close", &PacketSocket::Close),
                           InstanceAccessor("ifindex", &PacketSocket::Ifindex, nullptr),
                       });
  }

  // new PacketSocket(ifname, ethertype, filter: Buffer | null, onFrame(buf, pkttype), onWritable())
  explicit PacketSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PacketSocket>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[0].IsString() || !info[1].IsNumber() || !info[3].IsFunction() ||
        !info[4].IsFunction()) {
      Napi::TypeError::New(env, "PacketSocket(ifname, ethertype, filter, onFrame, onWritable)")
          .ThrowAsJavaScriptException();
      return;
    }
    ifname_ = info[0].As<Napi::String>().Utf8Value();
    uint16_t ethertype = static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value());
    onFrame_ = Napi::Persistent(info[3].As<Napi::Function>());
    onWritable_ = Napi::Persistent(info[4].As<Napi::Function>());

    ifindex_ = if_nametoindex(ifname_.c_str());
    if (ifindex_ == 0) {
      SysError(env, errno == 0 ? ENODEV : errno, "if_nametoindex", ifname_).ThrowAsJavaScriptException();
      return;
    }
    // Protocol 0 first: the socket receives nothing until bind(), so no frame of another interface or
    // EtherType slips in before the filter is attached.
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      SysError(env, errno, "socket", ifname_).ThrowAsJavaScriptException();
      return;
    }
    if (info[2].IsBuffer()) {
      Napi::Buffer<uint8_t> prog = info[2].As<Napi::Buffer<uint8_t>>();
      struct sock_fprog fprog;
      fprog.len = static_cast<unsigned short>(prog.Length() / sizeof(struct sock_filter));
      fprog.filter = reinterpret_cast<struct sock_filter*>(prog.Data());
      if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog) < 0) {
        Fail(env, "setsockopt(SO_ATTACH_FILTER)");
        return;
      }
    }
    // Our own transmissions are not requests to answer; skip them in the kernel (Linux 4.20+). The
    // responder also drops frames from its own MAC, so an older kernel only costs a little work.
    int one = 1;
    setsockopt(fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    int rcvbuf = 1 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);

    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ethertype);
    sll.sll_ifindex = static_cast<int>(ifindex_);
    if (bind(fd_, reinterpret_cast<struct sockaddr*>(&sll), sizeof sll) < 0) {
      Fail(env, "bind");
      return;
    }
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    int rc = uv_poll_init(loop, poll_, fd_);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      Fail(env, "uv_poll_init", -rc);
      return;
    }
    poll_->data = this;
    env_ = env;
    Ref();  // stay alive while the poll handle may call back
    UpdatePoll();
  }

  ~PacketSocket() override { CloseFd(); }

 private:
  void Fail(Napi::Env env, const char* syscall, int err = 0) {
    int e = err != 0 ? err : errno;
    ::close(fd_);
    fd_ = -1;
    SysError(env, e, syscall, ifname_).ThrowAsJavaScriptException();
  }

  void UpdatePoll() {
    if (poll_ == nullptr) return;
    int events = UV_READABLE | (wantWrite_ ? UV_WRITABLE : 0);
    uv_poll_start(poll_, events, &PacketSocket::OnPoll);
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<PacketSocket*>(handle->data);
    if (self == nullptr || self->fd_ < 0) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    if (status < 0) return;  // spurious; the next readiness event retries
    if ((events & UV_WRITABLE) != 0 && self->wantWrite_) {
      self->wantWrite_ = false;
      self->UpdatePoll();
      self->onWritable_.MakeCallback(self->Value(), {});
      if (self->fd_ < 0) return;
    }
    if ((events & UV_READABLE) != 0) self->ReadBatch(env);
  }

  void ReadBatch(Napi::Env env) {
    uint8_t buf[kMaxFrame];
    for (int i = 0; i < kBatch && fd_ >= 0; i++) {
      struct sockaddr_ll from;
      socklen_t fromlen = sizeof from;
      ssize_t n = recvfrom(fd_, buf, sizeof buf, MSG_DONTWAIT, reinterpret_cast<struct sockaddr*>(&from),
                           &fromlen);
      if (n < 0) return;  // EAGAIN (drained) or a transient error; readiness will tell us again
      Napi::HandleScope inner(env);
      Napi::Buffer<uint8_t> frame = Napi::Buffer<uint8_t>::Copy(env, buf, static_cast<size_t>(n));
      onFrame_.MakeCallback(Value(), {frame, Napi::Number::New(env, from.sll_pkttype)});
    }
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) {
      SysError(env, EBADF, "send", ifname_).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (info.Length() < 1 || !info[0].IsBuffer()) {
      Napi::TypeError::New(env, "send(frame: Buffer)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Buffer<uint8_t> frame = info[0].As<Napi::Buffer<uint8_t>>();
    ssize_t n = ::send(fd_, frame.Data(), frame.Length(), MSG_DONTWAIT);
    if (n >= 0) return Napi::Boolean::New(env, true);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      wantWrite_ = true;
      UpdatePoll();
      return Napi::Boolean::New(env, false);
    }
    SysError(env, errno, "send", ifname_).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  Napi::Value Membership(const Napi::CallbackInfo& info, int op, const char* what) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBuffer() || info[0].As<Napi::Buffer<uint8_t>>().Length() != 6) {
      Napi::TypeError::New(env, "expected a 6-byte MAC address").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    struct packet_mreq mreq;
    memset(&mreq, 0, sizeof mreq);
    mreq.mr_ifindex = static_cast<int>(ifindex_);
    mreq.mr_type = PACKET_MR_MULTICAST;
    mreq.mr_alen = 6;
    memcpy(mreq.mr_address, info[0].As<Napi::Buffer<uint8_t>>().Data(), 6);
    if (setsockopt(fd_, SOL_PACKET, op, &mreq, sizeof mreq) < 0) {
      SysError(env, errno, what, ifname_).ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  Napi::Value AddMembership(const Napi::CallbackInfo& info) {
    return Membership(info, PACKET_ADD_MEMBERSHIP, "setsockopt(PACKET_ADD_MEMBERSHIP)");
  }

  Napi::Value DropMembership(const Napi::CallbackInfo& info) {
    return Membership(info, PACKET_DROP_MEMBERSHIP, "setsockopt(PACKET_DROP_MEMBERSHIP)");
  }

  Napi::Value Ifindex(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), ifindex_);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    bool wasOpen = fd_ >= 0;
    CloseFd();
    if (wasOpen) Unref();
    return info.Env().Undefined();
  }

  void CloseFd() {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  std::string ifname_;
  unsigned int ifindex_ = 0;
  int fd_ = -1;
  bool wantWrite_ = false;
  uv_poll_t* poll_ = nullptr;
  napi_env env_ = nullptr;
  Napi::FunctionReference onFrame_;
  Napi::FunctionReference onWritable_;
};

}  // namespace

// The liveness thread's class lives in src/tunnel/native/liveness.cc; both ship in this one addon.
namespace vipmesh {
Napi::Function LivenessHubClass(Napi::Env env);
}  // namespace vipmesh

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("PacketSocket", PacketSocket::Init(env));
  exports.Set("LivenessHub", vipmesh::LivenessHubClass(env));
  exports.Set("ETH_P_ARP", Napi::Number::New(env, ETH_P_ARP));
  exports.Set("ETH_P_IPV6", Napi::Number::New(env, ETH_P_IPV6));
  return exports;
}

}  // namespace

NODE_API_MODULE(packet, Init)
