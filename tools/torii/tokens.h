// `torii token ...`, `torii guard ...` and `torii jwt ...`: the CLI side of
// PROTOCOL.md section 5's secure tokens, login guard and JWT deny-list
// (docs/cli.md). main.cpp registers them with one call.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "commands.h"

namespace torii::cli {

// Adds the three command groups to `app`; the chosen command sets `action`
// (run after parsing, returns the exit status). `g` must outlive the run.
void AddTokenCommands(CLI::App& app, const Globals& g, std::function<int()>& action);

}  // namespace torii::cli
