// Liveness datagrams for src/tunnel/liveness.ts, sent, read and judged by one native thread per hub.
//
// The thread is not a Node worker: it runs no JavaScript, has no V8 heap and allocates nothing while it runs,
// so neither the event loop nor any isolate's garbage collection can hold it up, and it costs a 256 KiB stack
// instead of an isolate. It waits in ppoll() for its sockets, an eventfd (JS changed something) or the next
// thing due (a ping to send, a peer's deadline), and tells JS about a peer that armed or was lost through a
// thread-safe function. The datagram format and the rules are documented in liveness.ts.
//
// The peer table is shared with the JS thread under a priority-inheriting mutex: the JS thread holds it for a
// map insert or erase, and if the real-time thread waits on it the holder runs at its priority meanwhile.
#include <napi.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

constexpr uint32_t kMagic = 0x564d4c56;  // "VMLV"
constexpr uint8_t kVersion = 1;
constexpr uint8_t kPing = 1;
constexpr uint8_t kAck = 2;
constexpr size_t kLen = 40;
constexpr size_t kSigned = 24;
constexpr size_t kTag = 16;
// A wake-up later than this was the thread's own stall, not the peer's silence (see Tick).
constexpr double kLateMs = 5;
// While anything is due, the thread wakes at least this often, so that a stall of its own host (a VM's vCPU
// not run, the whole machine held up) shows as a late wake-up even when no ping or deadline fell inside it:
// a receiver that sleeps until a deadline 100 ms away would otherwise count a 100 ms stall of its own host
// as its peer's silence.
constexpr double kWatchMs = 10;
// A wake-up later than this was a stall long enough to have held datagrams up on the way too: besides the
// time back, each peer gets a third of its bound from now (see Tick). A shorter one only gives the time back,
// so that the frequent small ones of a busy host do not each push a real death's verdict out.
constexpr double kStallMs = 20;
// Datagrams read per socket before the thread looks at its deadlines again.
constexpr int kDrainBatch = 256;
constexpr size_t kStack = 256 * 1024;

double NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

uint64_t Be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

void PutBe64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

uint64_t IdKey(const uint8_t* id) {
  uint64_t k;
  memcpy(&k, id, 8);
  return k;
}

Napi::Error SysError(Napi::Env env, int err, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("code", Napi::String::New(env, uv_err_name(-err)));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

// Parses "a.b.c.d" or an IPv6 literal with `port` into `out`.
bool ToSockaddr(const std::string& host, int port, sockaddr_storage* out, socklen_t* len) {
  memset(out, 0, sizeof(*out));
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

int UdpSocket(int family) {
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd >= 0 && family == AF_INET6) {
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  }
  return fd;
}

struct Peer {
  uint8_t id[8];
  // The session key, set once; used by the hub's thread only after that.
  HMAC_CTX* mac = nullptr;
  uint8_t expect = kPing;  // the kind this side receives
  double deadMs = 0;
  uint64_t last = 0;  // highest counter counted
  uint64_t sent = 0;  // pings sent (caller)
  bool armed = false;
  bool lost = false;
  double heardAt = 0;
  // A caller (agent) pings `to` through `fd` every `intervalMs`.
  bool calls = false;
  int fd = -1;
  sockaddr_storage to{};
  socklen_t toLen = 0;
  double intervalMs = 0;
  double nextSend = 0;

  ~Peer() {
    if (mac != nullptr) HMAC_CTX_free(mac);
  }
};

struct Event {
  uint8_t id[8];
  bool lost;
  double silentMs;
};

class LivenessHub : public Napi::ObjectWrap<LivenessHub> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "LivenessHub",
                       {
                           InstanceMethod("add", &LivenessHub::Add),
                           InstanceMethod("drop", &LivenessHub::Drop),
                           InstanceMethod("counts", &LivenessHub::Counts),
                           InstanceMethod("close", &LivenessHub::Close),
                           InstanceMethod("stall", &LivenessHub::Stall),
                           InstanceAccessor("port", &LivenessHub::Port, nullptr),
                           InstanceAccessor("realtimeError", &LivenessHub::RealtimeError, nullptr),
                       });
  }

  // new LivenessHub(bindHost: string | null, bindPort: number, onEvent(lost: boolean, id: Buffer, silentMs))
  explicit LivenessHub(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LivenessHub>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !(info[0].IsString() || info[0].IsNull()) || !info[1].IsNumber() ||
        !info[2].IsFunction()) {
      Napi::TypeError::New(env, "LivenessHub(bindHost | null, bindPort, onEvent)").ThrowAsJavaScriptException();
      return;
    }
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&mu_, &attr);
    pthread_mutexattr_destroy(&attr);
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_ < 0) {
      SysError(env, errno, "eventfd").ThrowAsJavaScriptException();
      return;
    }
    if (info[0].IsString()) {
      std::string host = info[0].As<Napi::String>().Utf8Value();
      int port = info[1].As<Napi::Number>().Int32Value();
      sockaddr_storage sa;
      socklen_t len;
      if (!ToSockaddr(host, port, &sa, &len)) {
        Napi::TypeError::New(env, "not an IP address: " + host).ThrowAsJavaScriptException();
        return;
      }
      int fd = UdpSocket(sa.ss_family);
      if (fd < 0) {
        SysError(env, errno, "socket").ThrowAsJavaScriptException();
        return;
      }
      fds_.push_back(fd);
      if (bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0) {
        SysError(env, errno, "bind").ThrowAsJavaScriptException();
        return;
      }
      sockaddr_storage bound;
      socklen_t blen = sizeof(bound);
      getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
      port_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                               : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "vipmesh liveness", 0, 1);
    tsfn_.Unref(env);

    pthread_attr_t tattr;
    pthread_attr_init(&tattr);
    pthread_attr_setstacksize(&tattr, kStack);
    int err = pthread_create(&thread_, &tattr, &LivenessHub::Main, this);
    pthread_attr_destroy(&tattr);
    if (err != 0) {
      tsfn_.Release();
      SysError(env, err, "pthread_create").ThrowAsJavaScriptException();
      return;
    }
    running_ = true;
    pthread_setname_np(thread_, "vipmesh-live");  // 15 characters at most
    // Real-time, this thread only: on a saturated machine an ordinary thread can wait hundreds of ms for a core.
    sched_param sp{};
    sp.sched_priority = 1;
    err = pthread_setschedparam(thread_, SCHED_RR, &sp);
    if (err != 0) realtimeError_ = std::string("pthread_setschedparam SCHED_RR 1: ") + strerror(err);
    napi_add_env_cleanup_hook(env, &LivenessHub::Cleanup, this);
    cleanupHook_ = true;
  }

  ~LivenessHub() override {
    Stop();
    pthread_mutex_destroy(&mu_);
  }

 private:
  static void Cleanup(void* self) {
    auto* hub = static_cast<LivenessHub*>(self);
    hub->cleanupHook_ = false;
    hub->Stop();
  }

  static void* Main(void* self) {
    static_cast<LivenessHub*>(self)->Run();
    return nullptr;
  }

  // add(id: Buffer(8), key: Buffer(32), deadMs, host?: string, port?: number, intervalMs?: number)
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsBuffer() || !info[1].IsBuffer() || !info[2].IsNumber()) {
      Napi::TypeError::New(env, "add(id, key, deadMs[, host, port, intervalMs])").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto id = info[0].As<Napi::Buffer<uint8_t>>();
    auto key = info[1].As<Napi::Buffer<uint8_t>>();
    if (id.Length() != 8 || key.Length() != 32) {
      Napi::RangeError::New(env, "add: the id is 8 bytes and the key 32").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto* p = new Peer();
    memcpy(p->id, id.Data(), 8);
    p->mac = HMAC_CTX_new();
    if (p->mac == nullptr || HMAC_Init_ex(p->mac, key.Data(), 32, EVP_sha256(), nullptr) != 1) {
      delete p;
      Napi::Error::New(env, "add: HMAC-SHA256 is not available").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    p->deadMs = info[2].As<Napi::Number>().DoubleValue();
    if (info.Length() >= 6 && info[3].IsString()) {
      std::string host = info[3].As<Napi::String>().Utf8Value();
      if (!ToSockaddr(host, info[4].As<Napi::Number>().Int32Value(), &p->to, &p->toLen)) {
        delete p;
        Napi::TypeError::New(env, "add: not an IP address: " + host).ThrowAsJavaScriptException();
        return env.Undefined();
      }
      p->calls = true;
      p->expect = kAck;
      p->intervalMs = info[5].As<Napi::Number>().DoubleValue();
    }
    pthread_mutex_lock(&mu_);
    if (p->calls) {
      int& fd = p->to.ss_family == AF_INET ? callFd4_ : callFd6_;
      if (fd < 0) {
        fd = UdpSocket(p->to.ss_family);
        if (fd >= 0) fds_.push_back(fd);
      }
      p->fd = fd;
    }
    auto old = peers_.find(IdKey(p->id));
    if (old != peers_.end()) {
      delete old->second;
      peers_.erase(old);
    }
    peers_[IdKey(p->id)] = p;
    pthread_mutex_unlock(&mu_);
    Wake();
    return env.Undefined();
  }

  Napi::Value Drop(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBuffer() || info[0].As<Napi::Buffer<uint8_t>>().Length() != 8) {
      Napi::TypeError::New(env, "drop(id)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint64_t k = IdKey(info[0].As<Napi::Buffer<uint8_t>>().Data());
    pthread_mutex_lock(&mu_);
    auto it = peers_.find(k);
    if (it != peers_.end()) {
      delete it->second;
      peers_.erase(it);
    }
    pthread_mutex_unlock(&mu_);
    Wake();
    return env.Undefined();
  }

  // [received, rejected, sent, longest silence judged (ms), silences over half their bound,
  //  the thread's longest late wake-up (ms), its longest busy span (ms), its major page faults]
  Napi::Value Counts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array a = Napi::Array::New(env, 8);
    a.Set(0u, Napi::Number::New(env, static_cast<double>(received_.load())));
    a.Set(1u, Napi::Number::New(env, static_cast<double>(rejected_.load())));
    a.Set(2u, Napi::Number::New(env, static_cast<double>(sent_.load())));
    a.Set(3u, Napi::Number::New(env, longest_.load()));
    a.Set(4u, Napi::Number::New(env, static_cast<double>(longSilences_.load())));
    a.Set(5u, Napi::Number::New(env, latest_.load()));
    a.Set(6u, Napi::Number::New(env, busiest_.load()));
    a.Set(7u, Napi::Number::New(env, static_cast<double>(majorFaults_.load())));
    return a;
  }

  // stall(ms): the thread sleeps `ms` once, outside its wait, as when the host does not run it (a vCPU not
  // scheduled, a suspended VM): its deadlines pass meanwhile, unlike a SIGSTOP, after which ppoll() resumes
  // with the time it had left. For tests.
  Napi::Value Stall(const Napi::CallbackInfo& info) {
    double ms = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
    pthread_mutex_lock(&mu_);
    stallMs_ = ms;
    pthread_mutex_unlock(&mu_);
    Wake();
    return info.Env().Undefined();
  }

  Napi::Value Port(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), port_); }

  Napi::Value RealtimeError(const Napi::CallbackInfo& info) {
    if (realtimeError_.empty()) return info.Env().Null();
    return Napi::String::New(info.Env(), realtimeError_);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (cleanupHook_) {
      napi_remove_env_cleanup_hook(info.Env(), &LivenessHub::Cleanup, this);
      cleanupHook_ = false;
    }
    Stop();
    return info.Env().Undefined();
  }

  void Wake() {
    uint64_t one = 1;
    ssize_t r = write(wake_, &one, sizeof(one));
    (void)r;
  }

  void Stop() {
    if (running_) {
      pthread_mutex_lock(&mu_);
      stop_ = true;
      pthread_mutex_unlock(&mu_);
      Wake();
      pthread_join(thread_, nullptr);
      running_ = false;
      tsfn_.Release();
    }
    for (auto& kv : peers_) delete kv.second;
    peers_.clear();
    for (int fd : fds_) ::close(fd);
    fds_.clear();
    callFd4_ = callFd6_ = -1;
    if (wake_ >= 0) {
      ::close(wake_);
      wake_ = -1;
    }
  }

  // The hub's thread.
  void Run() {
    std::vector<pollfd> pfds;
    for (;;) {
      pthread_mutex_lock(&mu_);
      if (stop_) {
        pthread_mutex_unlock(&mu_);
        return;
      }
      double due = Due();
      if (std::isfinite(due)) due = std::min(due, NowMs() + kWatchMs);
      pfds.clear();
      pfds.push_back({wake_, POLLIN, 0});
      for (int fd : fds_) pfds.push_back({fd, POLLIN, 0});
      pthread_mutex_unlock(&mu_);

      timespec ts;
      timespec* timeout = nullptr;
      if (std::isfinite(due)) {
        double wait = due - NowMs();
        if (wait < 0) wait = 0;
        ts.tv_sec = static_cast<time_t>(wait / 1e3);
        ts.tv_nsec = static_cast<long>((wait - static_cast<double>(ts.tv_sec) * 1e3) * 1e6);
        timeout = &ts;
      }
      double slept = NowMs();
      ppoll(pfds.data(), pfds.size(), timeout, nullptr);
      double woke = NowMs();
      // How long after it was due (or, when it already was, after asking) the thread came back.
      double late = woke - std::max(due, slept);
      if (late > latest_.load(std::memory_order_relaxed)) latest_.store(late, std::memory_order_relaxed);
      if (pfds[0].revents & POLLIN) {
        uint64_t n;
        ssize_t r = read(wake_, &n, sizeof(n));
        (void)r;
      }

      pthread_mutex_lock(&mu_);
      if (stallMs_ > 0) {
        timespec nap{static_cast<time_t>(stallMs_ / 1e3), static_cast<long>(fmod(stallMs_, 1e3) * 1e6)};
        stallMs_ = 0;
        pthread_mutex_unlock(&mu_);
        while (nanosleep(&nap, &nap) != 0 && errno == EINTR) {
        }
        pthread_mutex_lock(&mu_);
      }
      bool timed = false;
      if (!stop_) {
        Drain();
        double now = NowMs();
        timed = now >= due;
        if (timed) Tick(now, due);
      }
      pthread_mutex_unlock(&mu_);
      Account(woke, timed);
    }
  }

  // What the thread's own host did to it, for telling a silence the network made from one the host made: the
  // longest it took from waking to waiting again (a page fault, a lock, not being run in between), and the
  // major page faults it took (code or data read back from disk while a peer waited). The faults are read on
  // the timed wake-ups only (at least every kWatchMs), not on each datagram a server's thread wakes for.
  void Account(double woke, bool timed) {
    double busy = NowMs() - woke;
    if (busy > busiest_.load(std::memory_order_relaxed)) busiest_.store(busy, std::memory_order_relaxed);
    rusage ru;
    if (timed && getrusage(RUSAGE_THREAD, &ru) == 0) majorFaults_.store(ru.ru_majflt, std::memory_order_relaxed);
  }

  // When the thread must next wake without I/O: a ping to send or an armed peer's deadline.
  double Due() const {
    double due = INFINITY;
    for (const auto& kv : peers_) {
      const Peer* p = kv.second;
      if (p->calls && p->nextSend < due) due = p->nextSend;
      if (p->armed && !p->lost && p->heardAt + p->deadMs < due) due = p->heardAt + p->deadMs;
    }
    return due;
  }

  // Time this thread itself did not run (it woke late) is not the peer's silence: an agent whose pings went out
  // late would otherwise blame the server for acks it could not have sent. So after a late wake-up each peer
  // gets that time back, and after a stall (over kStallMs) at least a third of its bound (an interval at the
  // default 3 misses) from now to be heard from: the late pings' acks, or the peer's own datagrams that a
  // stall of the whole host (which is what stops a real-time thread) held up on the way. The verdict comes
  // after one more read of the sockets, so datagrams that queued meanwhile count first.
  void Tick(double now, double due) {
    double late = now - due;
    if (late > kLateMs) {
      for (auto& kv : peers_) {
        Peer* p = kv.second;
        if (!p->armed) continue;
        p->heardAt += late;
        if (late <= kStallMs) continue;
        double floor = now - p->deadMs + p->deadMs / 3;
        if (p->heardAt < floor) p->heardAt = floor;
      }
    }
    for (auto& kv : peers_) {
      Peer* p = kv.second;
      if (!p->calls || now < p->nextSend) continue;
      p->sent += 1;
      p->nextSend = now + p->intervalMs;
      uint8_t b[kLen];
      Packet(p, kPing, p->sent, b);
      Send(p->fd, b, reinterpret_cast<sockaddr*>(&p->to), p->toLen);
    }
    Drain();
    now = NowMs();
    for (auto& kv : peers_) {
      Peer* p = kv.second;
      if (!p->armed || p->lost || now - p->heardAt < p->deadMs) continue;
      p->lost = true;
      Emit(p, true, now - p->heardAt);
    }
  }

  void Drain() {
    uint8_t b[kLen + 1];
    for (int fd : fds_) {
      for (int i = 0; i < kDrainBatch; i++) {
        sockaddr_storage from;
        socklen_t flen = sizeof(from);
        ssize_t n = recvfrom(fd, b, sizeof(b), MSG_TRUNC | MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &flen);
        if (n < 0) break;
        Receive(fd, b, static_cast<size_t>(n), &from, flen);
      }
    }
  }

  void Receive(int fd, const uint8_t* b, size_t n, sockaddr_storage* from, socklen_t flen) {
    Peer* p = nullptr;
    if (n == kLen && Be64(b) >> 32 == kMagic && b[4] == kVersion) {
      auto it = peers_.find(IdKey(b + 8));
      if (it != peers_.end()) p = it->second;
    }
    uint64_t counter = n == kLen ? Be64(b + 16) : 0;
    uint8_t tag[EVP_MAX_MD_SIZE];
    if (p == nullptr || b[5] != p->expect || !Tag(p, b, tag) || CRYPTO_memcmp(tag, b + kSigned, kTag) != 0 ||
        counter <= p->last || (p->expect == kAck && counter > p->sent)) {
      rejected_.fetch_add(1);
      return;
    }
    received_.fetch_add(1);
    p->last = counter;
    double now = NowMs();
    if (p->armed) Judged(p, now - p->heardAt);
    p->heardAt = now;
    if (p->expect == kPing) {
      uint8_t ack[kLen];
      Packet(p, kAck, counter, ack);
      Send(fd, ack, reinterpret_cast<sockaddr*>(from), flen);
    }
    if (!p->armed) {
      p->armed = true;
      Emit(p, false, 0);
    }
  }

  // The silence an armed peer's datagram ended, as judged (time the thread itself did not run is not in it):
  // how near it came to the bound. Only this thread writes these.
  void Judged(const Peer* p, double silentMs) {
    if (silentMs > longest_.load(std::memory_order_relaxed)) longest_.store(silentMs, std::memory_order_relaxed);
    if (silentMs > p->deadMs / 2) longSilences_.fetch_add(1, std::memory_order_relaxed);
  }

  static bool Tag(Peer* p, const uint8_t* b, uint8_t* out) {
    unsigned int len = 0;
    return HMAC_Init_ex(p->mac, nullptr, 0, nullptr, nullptr) == 1 && HMAC_Update(p->mac, b, kSigned) == 1 &&
           HMAC_Final(p->mac, out, &len) == 1 && len >= kTag;
  }

  static void Packet(Peer* p, uint8_t kind, uint64_t counter, uint8_t* b) {
    memset(b, 0, kLen);
    b[0] = 'V';
    b[1] = 'M';
    b[2] = 'L';
    b[3] = 'V';
    b[4] = kVersion;
    b[5] = kind;
    memcpy(b + 8, p->id, 8);
    PutBe64(b + 16, counter);
    uint8_t tag[EVP_MAX_MD_SIZE];
    if (Tag(p, b, tag)) memcpy(b + kSigned, tag, kTag);
  }

  void Send(int fd, const uint8_t* b, const sockaddr* to, socklen_t len) {
    if (fd < 0) return;
    sent_.fetch_add(1);
    sendto(fd, b, kLen, MSG_DONTWAIT, to, len);
  }

  void Emit(Peer* p, bool lost, double silentMs) {
    auto* e = new Event();
    memcpy(e->id, p->id, 8);
    e->lost = lost;
    e->silentMs = silentMs;
    napi_status s = tsfn_.NonBlockingCall(e, [](Napi::Env env, Napi::Function fn, Event* e) {
      Deliver(env, fn, e);
      delete e;
    });
    if (s != napi_ok) delete e;
  }

  // One event to the JS callback. Plain N-API calls, checked but never thrown: while the environment goes
  // away they fail, and a throw there would abort the process. An exception from the callback itself is the
  // process's uncaught exception, as from any other callback.
  static void Deliver(napi_env env, napi_value fn, const Event* e) {
    if (env == nullptr || fn == nullptr) return;
    napi_value argv[3];
    napi_value recv;
    void* data = nullptr;
    if (napi_get_boolean(env, e->lost, &argv[0]) != napi_ok ||
        napi_create_buffer_copy(env, 8, e->id, &data, &argv[1]) != napi_ok ||
        napi_create_double(env, e->silentMs, &argv[2]) != napi_ok || napi_get_undefined(env, &recv) != napi_ok) {
      return;
    }
    if (napi_call_function(env, recv, fn, 3, argv, nullptr) == napi_pending_exception) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
  }

  pthread_mutex_t mu_;
  pthread_t thread_{};
  bool running_ = false;
  bool stop_ = false;
  bool cleanupHook_ = false;
  double stallMs_ = 0;
  int wake_ = -1;
  std::vector<int> fds_;
  int callFd4_ = -1;
  int callFd6_ = -1;
  int port_ = 0;
  std::string realtimeError_;
  std::unordered_map<uint64_t, Peer*> peers_;
  Napi::ThreadSafeFunction tsfn_;
  std::atomic<int64_t> received_{0};
  std::atomic<int64_t> rejected_{0};
  std::atomic<int64_t> sent_{0};
  std::atomic<double> longest_{0};
  std::atomic<int64_t> longSilences_{0};
  std::atomic<double> latest_{0};
  std::atomic<double> busiest_{0};
  std::atomic<int64_t> majorFaults_{0};
};

}  // namespace

namespace vipmesh {
Napi::Function LivenessHubClass(Napi::Env env) { return LivenessHub::Init(env); }
}  // namespace vipmesh
