// The composition root: opens the store, builds the key service, the in-memory index, the
// router with every dialect, and the HTTP server, from one immutable Config. `keygate serve`
// and the CLI commands use it; tests start the real binary instead.
//
// Thread safety: Create/Start/Run from the main thread; Stop() from any thread.
#pragma once

#include <memory>
#include <string>

#include "common/clock.h"
#include "common/log.h"
#include "common/secret_source.h"
#include "common/status.h"
#include "config/config.h"
#include "keys/key_service.h"

namespace keygate::server {

class App {
 public:
  // Opens the store named by `config` (creating it if needed) and wires every room.
  // `config_path` is the file `config` came from, re-read for the catalog on SIGHUP (empty:
  // none) with the environment and `overrides` (--listen, --data) as at the start, so that a
  // reload accepts only what the next start would. Unavailable if the store cannot be opened.
  // The references must outlive the App.
  static Result<std::unique_ptr<App>> Open(const config::Config& config, Logger& log,
                                           const Clock& clock, SecretSource& secrets,
                                           std::string config_path = {},
                                           std::vector<config::SettingOverride> overrides = {});
  ~App();

  // Binds the listener; returns the bound port. Unavailable if the address is taken.
  Result<uint16_t> Start();
  // Serves until SIGTERM/SIGINT or Stop(), then drains and flushes. Returns OK, or Unavailable
  // when usage records could not be stored before the stop gave up on the store.
  Status Run();
  void Stop();

  keys::KeyService& key_service();

 private:
  struct Parts;
  explicit App(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace keygate::server
