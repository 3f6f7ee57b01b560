#include "cmf/data/progress.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace cmf::data {
namespace {

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", b, units[u]);
  return buf;
}

}  // namespace

bool Progress::Wanted() {
  return ::isatty(STDOUT_FILENO) && ::isatty(STDERR_FILENO);
}

Progress::Progress(std::string label, bool enabled) : label_(std::move(label)) {
  if (!enabled || !Wanted()) return;
  start_ns_ = NowNs();
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mutex_);
    // The first line after half a second: short operations print nothing.
    while (!stop_.wait_for(lock, std::chrono::milliseconds(drawn_ ? 200 : 500),
                           [this] { return stopping_; })) {
      Draw();
    }
  });
}

Progress::~Progress() { Finish(); }

void Progress::Draw() {
  double seconds = static_cast<double>(NowNs() - start_ns_) / 1e9;
  std::uint64_t bytes = bytes_.load(std::memory_order_relaxed);
  std::fprintf(
      stderr, "\r\033[K%s: %llu files, %s, %s/s", label_.c_str(),
      static_cast<unsigned long long>(files_.load(std::memory_order_relaxed)),
      Bytes(static_cast<double>(bytes)).c_str(),
      Bytes(seconds > 0 ? static_cast<double>(bytes) / seconds : 0).c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::Finish() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stop_.notify_all();
  thread_.join();
  if (drawn_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
}

}  // namespace cmf::data
