// libFuzzer target: torii::Config::Parse on arbitrary text, as toriid does
// with its config file at start and on SIGHUP.
//
// Checks that a refusal is invalid_argument and names the file, and that an
// accepted config prints (ToToml) to text that parses back to the same
// config when it holds no secret (printing redacts the database URL).
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "torii/config.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto c = torii::Config::Parse(text, "fuzz.toml");
  if (!c.ok()) {
    Check(c.error().code() == torii::Code::kInvalidArgument);
    Check(c.error().message().rfind("fuzz.toml", 0) == 0);
    return 0;
  }
  std::string printed = c->ToToml();
  auto again = torii::Config::Parse(printed, "printed.toml");
  std::string url = c->database.url;
  for (char& ch : url) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (url.find("password") == std::string::npos && url.find('@') == std::string::npos) {
    Check(again.ok());
    Check(c->Diff(again.value()).empty());
  }
  torii::Config running;
  (void)running.ApplyReloadable(c.value());
  return 0;
}
