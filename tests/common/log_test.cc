// The log's writer: a line goes out as it is made while the reader keeps up; a reader that
// stops reading (audit BB, session 22: every thread that logged stopped with it, /healthz
// included) makes no caller wait: lines wait in a bounded backlog, then are dropped and counted.
#include "common/log.h"

#include <poll.h>
#include <pty.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

namespace keygate {
namespace {

using namespace std::chrono_literals;

class PipeLog {
 public:
  PipeLog() {
    EXPECT_EQ(pipe(fds_), 0);
    out_ = fdopen(fds_[1], "w");
  }
  ~PipeLog() {
    if (out_ != nullptr) std::fclose(out_);
    close(fds_[0]);
  }
  std::FILE* out() { return out_; }

  // What the pipe holds within `wait` (read until it has been empty that long).
  std::string Read(std::chrono::milliseconds wait) {
    std::string text;
    char buffer[65536];
    for (;;) {
      pollfd p{fds_[0], POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(wait.count())) <= 0) return text;
      const ssize_t n = read(fds_[0], buffer, sizeof buffer);
      if (n <= 0) return text;
      text.append(buffer, static_cast<size_t>(n));
    }
  }

 private:
  int fds_[2] = {-1, -1};
  std::FILE* out_ = nullptr;
};

std::vector<boost::json::object> Lines(const std::string& text) {
  std::vector<boost::json::object> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(line, ec);
    EXPECT_FALSE(ec) << "a broken line: " << line.substr(0, 200);
    if (!ec && v.is_object()) lines.push_back(v.as_object());
  }
  return lines;
}

TEST(LoggerTest, ALineIsInThePipeWhenLogReturns) {
  PipeLog pipe;
  Logger log(pipe.out(), LogLevel::kInfo);
  for (int i = 0; i < 3; ++i) {
    log.Info("step", {{"i", i}});
    const auto lines = Lines(pipe.Read(0ms));
    ASSERT_EQ(lines.size(), 1u) << i;
    EXPECT_EQ(lines[0].at("event"), "step");
    EXPECT_EQ(lines[0].at("i"), i);
  }
  EXPECT_EQ(log.dropped(), 0);
}

TEST(LoggerTest, AReaderThatStopsReadingMakesNoCallerWait) {
  PipeLog pipe;
  Logger log(pipe.out(), LogLevel::kInfo);
  const std::string pad(1000, 'x');
  constexpr int kLines = 10'000;  // ~10 MB: the pipe's 64 KiB, the 4 MiB backlog, then drops
  auto logged = std::async(std::launch::async, [&] {
    for (int i = 0; i < kLines; ++i) log.Info("line", {{"i", i}, {"pad", pad}});
  });
  // A hang detector, not a speed target: with writes that wait, this never ends (until the
  // pipe is read, as it then is, so that the test fails rather than hangs).
  const bool waited = logged.wait_for(20s) != std::future_status::ready;
  while (logged.wait_for(10ms) != std::future_status::ready) pipe.Read(0ms);
  ASSERT_FALSE(waited) << "Log waited for the reader";
  const int64_t dropped = log.dropped();
  EXPECT_GT(dropped, 0);
  // The reader is back: every line kept arrives whole and in order, then the count of those
  // dropped, and the lines after it as they are made.
  std::string text = pipe.Read(2000ms);
  log.Warn("after");
  text += pipe.Read(500ms);
  const auto lines = Lines(text);
  ASSERT_GE(lines.size(), 3u);
  int64_t last = -1;
  size_t kept = 0;
  for (const auto& line : lines) {
    if (line.at("event") != "line") break;
    EXPECT_GT(line.at("i").as_int64(), last);
    last = line.at("i").as_int64();
    ++kept;
  }
  ASSERT_EQ(lines.size(), kept + 2);
  EXPECT_EQ(lines[kept].at("event"), "log.dropped");
  EXPECT_EQ(lines[kept].at("level"), "warn");
  EXPECT_EQ(lines[kept].at("lines"), dropped);
  EXPECT_EQ(static_cast<int64_t>(kept) + dropped, kLines);
  EXPECT_LE(kept * (pad.size() + 60), Logger::kMostBacklogBytes + 65536 + 2 * pad.size());
  EXPECT_EQ(lines[kept + 1].at("event"), "after");
}

TEST(LoggerTest, AStopWaitsForAStalledReaderOnlyAMoment) {
  PipeLog pipe;
  auto log = std::make_unique<Logger>(pipe.out(), LogLevel::kInfo);
  const std::string pad(1000, 'x');
  for (int i = 0; i < 200; ++i) log->Info("line", {{"pad", pad}});  // past the pipe's room
  const auto start = std::chrono::steady_clock::now();
  auto stopped = std::async(std::launch::async, [&] { log.reset(); });
  // A reader that takes a little at a time holds the stop no longer (the review: 34 s).
  while (stopped.wait_for(50ms) != std::future_status::ready) pipe.Read(0ms).size();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << "the stop waited for the reader";
}

// The review: a terminal that polls writable still blocked a write longer than its room, with
// the Logger's lock held, and every thread that logged behind it.
TEST(LoggerTest, ATerminalNobodyReadsMakesNoCallerWait) {
  int master = -1;
  int slave = -1;
  ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  std::FILE* out = fdopen(slave, "w");
  ASSERT_NE(out, nullptr);
  {
    Logger log(out, LogLevel::kInfo);
    const std::string pad(1000, 'x');
    auto logged = std::async(std::launch::async, [&] {
      for (int i = 0; i < 2000; ++i) log.Info("line", {{"pad", pad}});
    });
    const bool waited = logged.wait_for(20s) != std::future_status::ready;
    char buffer[65536];
    while (logged.wait_for(10ms) != std::future_status::ready) {
      if (read(master, buffer, sizeof buffer) < 0) break;
    }
    EXPECT_FALSE(waited) << "Log waited for the terminal";
  }
  std::fclose(out);
  close(master);
}

TEST(LoggerTest, AFileIsWrittenAsEachLineIsMade) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  {
    Logger log(file, LogLevel::kWarn);
    log.Info("not written");
    log.Warn("written", {{"n", 1}});
    std::rewind(file);
    char buffer[256] = {};
    ASSERT_NE(std::fgets(buffer, sizeof buffer, file), nullptr);
    EXPECT_NE(std::string(buffer).find("\"event\":\"written\""), std::string::npos) << buffer;
  }
  std::fclose(file);
}

}  // namespace
}  // namespace keygate
