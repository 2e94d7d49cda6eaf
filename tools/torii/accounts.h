// `torii oauth ...` and `torii passkey ...`: the account operations of
// PROTOCOL.md section 5 (issue 19). See docs/cli.md.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "commands.h"

namespace torii::cli {

// Adds the subcommands to `app`; the chosen one sets `action` once parsing
// succeeded (it returns the exit status).
void AddAccountCommands(CLI::App& app, Globals& g, std::function<int()>& action);

}  // namespace torii::cli
