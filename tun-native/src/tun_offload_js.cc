// The N-API face of tun_offload.h: segmentation and coalescing over packet lists the facade
// keeps in typed arrays (bytes, offsets, lengths), one crossing per list, nothing allocated per
// call. The facade (tun-native/offload.ts) grows its arenas when told they were too small.
#include <napi.h>

#include <string>

#include "addon_data.h"
#include "errors.h"
#include "tun_offload.h"

namespace tunkeeper {

namespace {

template <typename T>
T ArrayArg(const Napi::CallbackInfo& info, std::size_t i, napi_typedarray_type type, const char* fn, const char* what) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    ThrowInvalidArg(info.Env(), std::string(fn) + ": " + what + " must be a " + (type == napi_uint8_array ? "Uint8Array" : type == napi_uint32_array ? "Uint32Array" : "Float64Array"));
  return v.As<T>();
}

uint32_t CountArg(const Napi::CallbackInfo& info, std::size_t i, uint32_t max, const char* fn) {
  if (!info[i].IsNumber()) ThrowInvalidArg(info.Env(), std::string(fn) + ": count must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= max) || d != static_cast<double>(static_cast<uint32_t>(d)))
    ThrowInvalidArg(info.Env(), std::string(fn) + ": count must be a whole number no larger than the offsets and lengths given");
  return static_cast<uint32_t>(d);
}

struct Lists {
  PacketList in;
  PacketOut out;
  double* status;
};

// (bytes, offsets, lengths, count, vnetHdrLen, [flag,] out, outOffsets, outLengths, status)
Lists ReadLists(const Napi::CallbackInfo& info, std::size_t outAt, const char* fn) {
  auto bytes = ArrayArg<Napi::Uint8Array>(info, 0, napi_uint8_array, fn, "bytes");
  auto offsets = ArrayArg<Napi::Uint32Array>(info, 1, napi_uint32_array, fn, "offsets");
  auto lengths = ArrayArg<Napi::Uint32Array>(info, 2, napi_uint32_array, fn, "lengths");
  uint32_t count = CountArg(info, 3, static_cast<uint32_t>(std::min(offsets.ElementLength(), lengths.ElementLength())), fn);
  auto out = ArrayArg<Napi::Uint8Array>(info, outAt, napi_uint8_array, fn, "out");
  auto outOffsets = ArrayArg<Napi::Uint32Array>(info, outAt + 1, napi_uint32_array, fn, "outOffsets");
  auto outLengths = ArrayArg<Napi::Uint32Array>(info, outAt + 2, napi_uint32_array, fn, "outLengths");
  auto status = ArrayArg<Napi::Float64Array>(info, outAt + 3, napi_float64_array, fn, "status");
  if (status.ElementLength() < 3) ThrowInvalidArg(info.Env(), std::string(fn) + ": status needs 3 entries");
  Lists l;
  l.in = PacketList{bytes.Data(), bytes.ByteLength(), offsets.Data(), lengths.Data(), count};
  l.out = PacketOut{out.Data(), out.ByteLength(), outOffsets.Data(), outLengths.Data(),
                    static_cast<uint32_t>(std::min(outOffsets.ElementLength(), outLengths.ElementLength()))};
  l.status = status.Data();
  return l;
}

std::size_t VnetLenArg(const Napi::CallbackInfo& info, const char* fn) {
  if (!info[4].IsNumber()) ThrowInvalidArg(info.Env(), std::string(fn) + ": vnetHdrLen must be a number");
  uint32_t v = info[4].As<Napi::Number>().Uint32Value();
  if (v != 10 && v != 12) ThrowInvalidArg(info.Env(), std::string(fn) + ": vnetHdrLen must be 10 or 12");
  return v;
}

// offloadSegment(bytes, offsets, lengths, count, vnetHdrLen, out, outOffsets, outLengths, status)
// → packets written, or -1 (nothing written) when out or its offsets/lengths are too small;
// status = [bytes written or needed, packets written or needed, malformed inputs skipped].
Napi::Value OffloadSegment(const Napi::CallbackInfo& info) {
  std::size_t vlen = VnetLenArg(info, "segment");
  Lists l = ReadLists(info, 5, "segment");
  SegmentResult r = SegmentPackets(l.in, vlen, l.out);
  l.status[0] = static_cast<double>(r.bytes);
  l.status[1] = r.needed;
  l.status[2] = r.invalid;
  return Napi::Number::New(info.Env(), r.fits ? static_cast<double>(r.count) : -1.0);
}

// offloadCoalesce(bytes, offsets, lengths, count, vnetHdrLen, udp, out, outOffsets, outLengths, status)
// → packets written, each a vnet header and an IP packet; status = [bytes written, 0, inputs merged].
// Throws when out is smaller than the inputs plus a header each (aligned) or holds fewer slots.
Napi::Value OffloadCoalesce(const Napi::CallbackInfo& info) {
  std::size_t vlen = VnetLenArg(info, "coalesce");
  bool udp = info[5].ToBoolean();
  Lists l = ReadLists(info, 6, "coalesce");
  for (uint32_t i = 0; i < l.in.count; i++) {
    if (std::size_t(l.in.offsets[i]) + l.in.lengths[i] > l.in.size)
      ThrowInvalidArg(info.Env(), "coalesce: packet " + std::to_string(i) + " lies outside the bytes given");
  }
  std::size_t need = CoalesceCapacity(l.in, vlen);
  if (need > l.out.capacity || l.in.count > l.out.maxCount)
    ThrowInvalidArg(info.Env(), "coalesce: out needs " + std::to_string(need) + " bytes and " + std::to_string(l.in.count) + " slots");
  CoalesceResult r = CoalescePackets(l.in, vlen, udp, l.out);
  l.status[0] = static_cast<double>(r.bytes);
  l.status[1] = 0;
  l.status[2] = r.merged;
  return Napi::Number::New(info.Env(), r.count);
}

}  // namespace

void InitOffload(Napi::Env env, Napi::Object exports) {
  exports.Set("offloadSegment", Napi::Function::New(env, OffloadSegment, "offloadSegment"));
  exports.Set("offloadCoalesce", Napi::Function::New(env, OffloadCoalesce, "offloadCoalesce"));
}

}  // namespace tunkeeper
