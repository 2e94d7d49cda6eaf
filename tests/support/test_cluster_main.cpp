// torii_test_cluster: holds the shared PostgreSQL of a test run.
//
//   torii_test_cluster --dir DIR --info FILE [--tcp]
//
// Starts a PgCluster in DIR, then writes FILE (atomically, via rename) with
// three shell-friendly lines, TORII_TEST_PGHOST=..., TORII_TEST_PGPORT=...,
// TORII_TEST_PGUSER=..., and runs until SIGTERM or SIGINT, when it stops
// the server. The server dies with this process (PR_SET_PDEATHSIG), so it
// must stay in the foreground of whoever runs the tests (tools/test).
// Exit status: 0 after a signal, 1 if the cluster could not start.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <string>

#include "pg_cluster.h"

int main(int argc, char** argv) {
  std::string dir, info;
  bool tcp = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (a == "--info" && i + 1 < argc) {
      info = argv[++i];
    } else if (a == "--tcp") {
      tcp = true;
    } else {
      std::fprintf(stderr, "usage: torii_test_cluster --dir DIR --info FILE [--tcp]\n");
      return 2;
    }
  }
  if (dir.empty() || info.empty()) {
    std::fprintf(stderr, "usage: torii_test_cluster --dir DIR --info FILE [--tcp]\n");
    return 2;
  }
  // Block the stop signals now and wait for them below, so one that comes
  // while the server starts is not lost and needs no handler.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  try {
    torii::test::PgCluster cluster({.tcp = tcp, .dir = dir});
    const auto& ci = cluster.info();
    std::string tmp = info + ".tmp";
    {
      std::ofstream out(tmp);
      out << "TORII_TEST_PGHOST=" << ci.host << "\nTORII_TEST_PGPORT=" << ci.port << "\nTORII_TEST_PGUSER=" << ci.user
          << "\n";
      if (!out) throw std::runtime_error("cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), info.c_str()) != 0) throw std::runtime_error("cannot write " + info);
    std::fprintf(stderr, "torii_test_cluster: serving %s port %d\n", ci.host.c_str(), ci.port);
    int sig = 0;
    sigwait(&stop, &sig);
    std::fprintf(stderr, "torii_test_cluster: %s, stopping\n", strsignal(sig));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "torii_test_cluster: %s\n", e.what());
    return 1;
  }
  return 0;
}
