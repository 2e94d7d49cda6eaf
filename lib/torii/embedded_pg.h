// A private PostgreSQL cluster run as a child process: toriid's
// zero-configuration default, and the throwaway server of the tests.
//
// Blocking; call it before the event loop starts or after it stops. The
// server listens on a Unix socket in `socket_dir` (and on TCP only when
// `listen_addresses` is set). The child gets PR_SET_PDEATHSIG, so it shuts
// down when the process that started it dies, even by SIGKILL.
// When run as root, initdb and postgres run as `run_as` (PostgreSQL refuses
// root), and the data directory is given to that account.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "torii/error.h"

namespace torii {

struct EmbeddedPgOptions {
  std::string data_dir;
  std::string socket_dir;        // empty: data_dir
  int port = 5432;               // also names the socket file
  std::string listen_addresses;  // empty: no TCP listener
  std::string run_as = "postgres";
  std::string superuser = "torii";
  std::vector<std::pair<std::string, std::string>> settings;  // extra -c name=value
  bool fast_initdb = false;      // initdb --no-sync, for tests
};

class EmbeddedPostgres {
 public:
  explicit EmbeddedPostgres(EmbeddedPgOptions options);
  ~EmbeddedPostgres();  // stops the server if this object started it
  EmbeddedPostgres(const EmbeddedPostgres&) = delete;
  EmbeddedPostgres& operator=(const EmbeddedPostgres&) = delete;

  // The folder with initdb and postgres: TORII_PG_BINDIR, else the newest
  // /usr/lib/postgresql/N/bin, else `pg_config --bindir`. Error names the
  // Debian package to install.
  static Result<std::string> FindBinDir();
  // The default data directory: /var/lib/toriid/pg as root, else
  // $XDG_DATA_HOME/toriid/pg or ~/.local/share/toriid/pg.
  static std::string DefaultDataDir();

  // Runs initdb unless data_dir already holds a cluster.
  Status Init();
  // Starts postgres and waits until it accepts connections.
  Status Start(int timeout_ms = 30000);
  // "fast" (SIGINT) or "immediate" (SIGQUIT) shutdown; waits for the exit.
  Status Stop(bool immediate = false, int timeout_ms = 30000);
  Status Restart(bool immediate = false);
  // Creates the database when missing.
  Status EnsureDatabase(const std::string& name);

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const EmbeddedPgOptions& options() const { return opt_; }
  // key=value connection string for `dbname` over the Unix socket.
  std::string ConnInfo(const std::string& dbname) const;
  // The server's log file (its stderr).
  std::string LogPath() const { return opt_.data_dir + "/postgres.log"; }

 private:
  EmbeddedPgOptions opt_;
  std::string bindir_;
  pid_t pid_ = -1;
};

}  // namespace torii
