// AF_PACKET binding for src/arp. Filled in by the announcer work (issue 4).
#include <napi.h>

static Napi::Object Init(Napi::Env env, Napi::Object exports) { return exports; }

NODE_API_MODULE(packet, Init)
