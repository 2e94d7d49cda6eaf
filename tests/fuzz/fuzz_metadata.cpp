// libFuzzer target: metadata between msgpack and JSON, the way a request's
// metadata goes into JSONB and comes back out in replies and events.
//
// For input that unpacks and converts (MetadataToJson ok), checks that
//   msgpack -> JSON -> PackJson -> msgpack -> JSON gives the same JSON, and
//   JSON -> text (what is stored) -> PackJsonText gives the same msgpack,
// and that a refusal is always invalid_argument.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "torii/protocol.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

std::string Packed(const nlohmann::json& j) {
  msgpack::sbuffer buf;
  torii::Packer pk(buf);
  torii::PackJson(pk, j);
  return std::string(buf.data(), buf.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto oh = torii::UnpackBounded(reinterpret_cast<const char*>(data), size, torii::DecodeLimits{});
  if (!oh.ok()) return 0;
  auto j = torii::MetadataToJson(oh->get());
  if (!j.ok()) {
    Check(j.error().code() == torii::Code::kInvalidArgument);
    return 0;
  }
  std::string packed = Packed(j.value());
  auto back = torii::UnpackBounded(packed.data(), packed.size(), torii::DecodeLimits{});
  Check(back.ok());
  auto j2 = torii::MetadataToJson(back->get());
  Check(j2.ok());
  Check(j2.value() == j.value());

  // The stored form is JSON text; strings that are not UTF-8 are refused
  // there (Args::Metadata turns the exception into invalid_argument).
  std::string text;
  try {
    text = j->dump();
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  msgpack::sbuffer from_text;
  torii::Packer pk(from_text);
  torii::PackJsonText(pk, text);
  Check(std::string(from_text.data(), from_text.size()) == packed);
  return 0;
}
