// keygate: the command line. `serve` runs the gateway; `init`, `owner create` and
// `provisioning-key create` bootstrap an organization without HTTP (spec §1, §2a). Exceptions
// are for start-up only: every failure here prints one line and exits 1.
#include <dlfcn.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/clock.h"
#include "common/json_writer.h"
#include "common/log.h"
#include "common/secret_source.h"
#include "config/config.h"
#include "http/server.h"
#include "server/app.h"
#include "server/serve_lock.h"
#include "store/sqlite/sqlite_store.h"

namespace {

using keygate::Result;

struct CommonFlags {
  std::string config_path;
  std::string data_dir;
  std::string listen;
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "keygate: %s\n", message.c_str());
  return 1;
}

// The settings the command line gives (--data, --listen), over the file and the environment.
std::vector<keygate::config::SettingOverride> OverridesOf(const CommonFlags& flags) {
  std::vector<keygate::config::SettingOverride> overrides;
  if (!flags.data_dir.empty()) overrides.emplace_back("data", flags.data_dir);
  if (!flags.listen.empty()) overrides.emplace_back("listen", flags.listen);
  return overrides;
}

Result<keygate::config::Config> LoadConfig(const CommonFlags& flags) {
  return keygate::config::LoadConfig(flags.config_path, &std::getenv, OverridesOf(flags));
}

// The malloc this process runs on, for the start-up line: the object that provides the
// `malloc` calls resolve to, found at run time, so that a build without jemalloc (linked by
// default, see docs/decisions/0017-jemalloc.md) or another malloc preloaded shows as what it
// is. "jemalloc <version>" when that object also provides jemalloc's mallctl (a shared
// library or the executable itself), else the object's file name ("libc.so.6",
// "libtcmalloc_minimal.so.4", ...).
std::string AllocatorName() {
  void* const malloc_symbol = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info provider{};
  if (malloc_symbol == nullptr || dladdr(malloc_symbol, &provider) == 0) return "unknown";
  using Mallctl = int (*)(const char*, void*, size_t*, void*, size_t);
  const auto mallctl = reinterpret_cast<Mallctl>(dlsym(RTLD_DEFAULT, "mallctl"));
  Dl_info mallctl_provider{};
  const char* version = nullptr;
  size_t size = sizeof version;
  if (mallctl != nullptr && dladdr(reinterpret_cast<void*>(mallctl), &mallctl_provider) != 0 &&
      mallctl_provider.dli_fbase == provider.dli_fbase &&
      mallctl("version", &version, &size, nullptr, 0) == 0 && version != nullptr) {
    return std::string("jemalloc ") + version;
  }
  std::string file = provider.dli_fname != nullptr ? provider.dli_fname : "";
  file.erase(0, file.rfind('/') + 1);  // npos + 1 == 0: a name without a directory stays
  return file.empty() ? "unknown" : file;
}

// The names of this process's environment variables (never their values).
std::vector<std::string> EnvironmentNames() {
  std::vector<std::string> names;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    names.emplace_back(text.substr(0, text.find('=')));
  }
  return names;
}

struct Runtime {
  keygate::SystemClock clock;
  keygate::OsSecretSource secrets;
};

// SIGHUP is held from the first code of keygate's that runs (a constructor, before main() and
// its argument parsing; before any thread starts) until `serve` runs its server: a reload asked
// for while keygate starts, the store loading, waits for the server instead of ending the
// process (SIGHUP's default action). The other commands keep it held: they are short.
__attribute__((constructor)) void HoldSighupFromTheStart() {
  keygate::http::Server::HoldSighupUntilRun();
}

// Each client connection, each upstream connection and the store's files take a descriptor:
// about twice limits.max_connections at full load. The soft limit is raised to the hard one
// (as Go's runtime does; keygate waits with epoll, which has no limit of select()'s), and a hard
// limit below that need is told: keygate would run out long before it refuses a connection
// (audit BB: 64 descriptors, 10,000 connections allowed).
void RaiseTheDescriptorLimit(int64_t max_connections, keygate::Logger& log) {
  constexpr int64_t kOwnDescriptors = 256;  // the store, the event loops, the log
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised{limit.rlim_max, limit.rlim_max};
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  if (limit.rlim_cur == RLIM_INFINITY) return;
  const auto soft = static_cast<int64_t>(limit.rlim_cur);
  if (soft >= 2 * max_connections + kOwnDescriptors) return;
  log.Warn("server.descriptor_limit",
           {{"open_files_limit", soft},
            {"max_connections", max_connections},
            {"note", "below twice limits.max_connections (a client's and an upstream "
                     "connection each) and keygate's own: it will run out before it refuses a "
                     "connection; raise the limit (ulimit -Hn, systemd's LimitNOFILE) or lower "
                     "limits.max_connections"}});
}

int Serve(const CommonFlags& flags) {
  auto config = LoadConfig(flags);
  if (!config.ok()) return Fail(config.error().message);
  keygate::Logger log(stderr, config->settings.log_level);
  for (const std::string& note :
       keygate::config::UnknownKeygateVariables(EnvironmentNames(), *config)) {
    log.Warn("config.unknown_environment", {{"note", note}});
  }
  RaiseTheDescriptorLimit(config->settings.max_connections, log);
  // One server per store, taken before the store is even opened (a second server must not
  // migrate a schema under the first), and held until the process ends: declared before the
  // app, it is released after the app has closed the store.
  if (keygate::Status dir = keygate::store::SqliteStore::CreateDirectoryFor(
          config->settings.SqlitePath());
      !dir.ok()) {
    return Fail(dir.error().message);
  }
  auto lock = keygate::server::ServeLock::Acquire(config->settings.SqlitePath());
  if (!lock.ok()) return Fail(lock.error().message);
  Runtime runtime;
  auto app = keygate::server::App::Open(*config, log, runtime.clock, runtime.secrets,
                                        flags.config_path, OverridesOf(flags));
  if (!app.ok()) return Fail(app.error().message);
  auto port = (*app)->Start();
  if (!port.ok()) return Fail(port.error().message);
  log.Info("server.listening",
           {{"host", config->settings.listen_host},
            {"port", static_cast<int64_t>(*port)},
            {"data", config->settings.data_dir},
            {"store", config->settings.SqlitePath()},
            {"config", flags.config_path.empty() ? "(none: defaults and environment)"
                                                 : flags.config_path},
            {"providers", static_cast<uint64_t>(config->catalog.providers.size())},
            {"models", static_cast<uint64_t>(config->catalog.models.size())},
            {"allocator", AllocatorName()}});
  const std::string& host = config->settings.listen_host;
  const bool ipv6 = host.find(':') != std::string::npos;  // a URL brackets an IPv6 address
  std::printf("keygate listening on http://%s%s%s:%u\n", ipv6 ? "[" : "", host.c_str(),
              ipv6 ? "]" : "", *port);
  std::fflush(stdout);
  // Through the log, not around it: stderr written beside the Logger could block on a stalled
  // reader for good and cut one of its lines in two (the review).
  if (keygate::Status stopped = (*app)->Run(); !stopped.ok()) {
    log.Error("server.failed", {{"error", stopped.error().message}});
    return 1;
  }
  return 0;
}

// Why a command must not write to the SQLite store at `path` now, or "". Beside a running
// server the store's -wal and -shm always exist (SQLite keeps both while a connection is open):
// one missing was removed under the server, which then takes no write until it is restarted.
// A command would write to files of its own that the server never reads, and print a secret
// the store may lose at the server's next crash (audit AA).
std::string RefusalBesideAServer(const std::string& path) {
  const std::optional<std::string> holder = keygate::server::ServeLock::Holder(path);
  if (!holder) return "";
  const std::string file = keygate::store::DatabaseFileOf(path);
  for (const char* suffix : {"-wal", "-shm"}) {
    std::error_code ec;
    if (std::filesystem::exists(file + suffix, ec) || ec) continue;
    return "keygate serve" + (holder->empty() ? std::string() : " (pid " + *holder + ")") +
           " holds the store " + path + ", and its " + file + suffix +
           " is missing: it was removed under the server (restart the server, then run this "
           "again), or the server is starting or stopping (run this again). Nothing was "
           "written.";
  }
  return "";
}

// Runs `fn` against the key service of the configured store, without serving. Only `init`
// (`create_store`) makes a store that is not there yet: another command would make an empty
// one by mistake (a --data missing or wrong) and then fail for want of the organization.
template <class Fn>
int WithKeyService(const CommonFlags& flags, bool create_store, Fn fn) {
  auto config = LoadConfig(flags);
  if (!config.ok()) return Fail(config.error().message);
  if (!create_store && config->settings.store_kind == keygate::config::StoreKind::kSqlite) {
    // An empty file (a failed copy, an interrupted init) holds no store either.
    std::error_code ec;
    const auto size = std::filesystem::file_size(config->settings.SqlitePath(), ec);
    if (ec || size == 0) {
      return Fail("no store at " + config->settings.SqlitePath() +
                  ": run `keygate init` first, or pass the --data (or --config) of the server");
    }
  }
  if (config->settings.store_kind == keygate::config::StoreKind::kSqlite) {
    if (std::string refusal = RefusalBesideAServer(config->settings.SqlitePath());
        !refusal.empty()) {
      return Fail(refusal);
    }
  }
  keygate::Logger log(stderr, keygate::LogLevel::kWarn);
  Runtime runtime;
  auto app = keygate::server::App::Open(*config, log, runtime.clock, runtime.secrets);
  if (!app.ok()) return Fail(app.error().message);
  return fn((*app)->key_service());
}

// Prints {"<id_field>": id, "<secret_field>": secret}: what a command made, its secret once.
int PrintIssued(const char* id_field, const std::string& id, const char* secret_field,
                const std::string& secret) {
  keygate::JsonWriter w;
  w.BeginObject().Key(id_field).String(id).Key(secret_field).String(secret).EndObject();
  std::printf("%s\n", w.str().c_str());
  return 0;
}

int Init(const CommonFlags& flags, const std::string& org_name) {
  // Checked before the store is made: a typo must not leave an empty store behind, which the
  // other commands would then take for one.
  if (keygate::Status name = keygate::keys::CheckName(org_name, "org"); !name.ok()) {
    return Fail(name.error().message);
  }
  return WithKeyService(flags, /*create_store=*/true, [&](keygate::keys::KeyService& keys) {
    auto org = keys.CreateOrganization(org_name);
    if (!org.ok()) return Fail(org.error().message);
    return PrintIssued("org_id", org->org.id, "owner_key", org->owner_secret);
  });
}

int CreateOwner(const CommonFlags& flags, const std::string& org_id, const std::string& name) {
  return WithKeyService(flags, /*create_store=*/false, [&](keygate::keys::KeyService& keys) {
    auto issued = keys.CreateOwnerCredential(org_id, name);
    if (!issued.ok()) return Fail(issued.error().message);
    return PrintIssued("id", issued->owner.hash, "owner_key", issued->secret);
  });
}

int CreateProvisioningKey(const CommonFlags& flags, const std::string& org_id,
                          const std::string& name) {
  return WithKeyService(flags, /*create_store=*/false, [&](keygate::keys::KeyService& keys) {
    keygate::keys::Caller cli{keygate::keys::CallerKind::kOwner, org_id, "cli", "keygate cli",
                              "keygate cli"};
    auto issued = keys.CreateProvisioningKey(cli, name, "cli");
    if (!issued.ok()) return Fail(issued.error().message);
    return PrintIssued("id", issued->key.hash, "key", issued->secret);
  });
}

// A flag given an empty value (`--data "$DATA_DIR"` with the variable unset) is refused: taken
// for "not given", it served a new, empty store in ./data (audit V).
const CLI::Validator kNonEmpty(
    [](std::string& value) { return value.empty() ? std::string("must not be empty") : ""; },
    "", "non-empty");

void AddCommonFlags(CLI::App* command, CommonFlags* flags, bool with_listen) {
  command->add_option("--config", flags->config_path, "YAML config file")->check(kNonEmpty);
  command->add_option("--data", flags->data_dir, "data directory (default ./data)")
      ->check(kNonEmpty);
  if (with_listen) {
    command->add_option("--listen", flags->listen, "HOST:PORT (default 127.0.0.1:8080)")
        ->check(kNonEmpty);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"keygate: a self-hosted AI gateway whose API keys manage themselves"};
  cli.require_subcommand(1);
  CommonFlags flags;
  std::string org_name = "default";
  std::string org_id, key_name;

  CLI::App* serve = cli.add_subcommand("serve", "serve the management and data APIs");
  AddCommonFlags(serve, &flags, true);
  serve->footer(keygate::config::SettingsHelp());
  CLI::App* init = cli.add_subcommand("init", "create an organization and its first owner key");
  AddCommonFlags(init, &flags, false);
  init->add_option("--org", org_name, "organization name");
  CLI::App* owner = cli.add_subcommand("owner", "manage owner credentials");
  owner->require_subcommand(1);
  CLI::App* owner_create =
      owner->add_subcommand("create", "create another owner credential of an organization");
  AddCommonFlags(owner_create, &flags, false);
  owner_create->add_option("--org", org_id, "organization id")->required();
  owner_create->add_option("--name", key_name, "the credential's name (1 to 256 characters)")
      ->required();
  CLI::App* pk = cli.add_subcommand("provisioning-key", "manage provisioning keys");
  pk->require_subcommand(1);
  CLI::App* pk_create = pk->add_subcommand("create", "create a provisioning key");
  AddCommonFlags(pk_create, &flags, false);
  pk_create->add_option("--org", org_id, "organization id")->required();
  pk_create->add_option("--name", key_name, "unique name in the org")->required();

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 says only "A subcommand is required" of `keygate bogus` or `keygate owner list`:
    // name what it did not know.
    for (CLI::App* app : {&cli, owner, pk}) {
      const std::vector<std::string> left = app->remaining();
      if (left.empty() || left.front().starts_with("-")) continue;
      std::fprintf(stderr, "keygate: unknown command '%s'; see %s --help\n", left.front().c_str(),
                   app == &cli ? "keygate" : ("keygate " + app->get_name()).c_str());
      return static_cast<int>(CLI::ExitCodes::ExtrasError);
    }
    return cli.exit(e);
  }
  try {
    if (*serve) return Serve(flags);
    if (*init) return Init(flags, org_name);
    if (*pk_create) return CreateProvisioningKey(flags, org_id, key_name);
    if (*owner_create) return CreateOwner(flags, org_id, key_name);
  } catch (const std::exception& e) {
    return Fail(e.what());
  }
  return 1;
}
