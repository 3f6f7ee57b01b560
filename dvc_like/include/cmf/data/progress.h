// A one-line progress report for long operations: files, bytes and rate,
// redrawn on standard error a few times a second while standard output is a
// terminal, and silent otherwise (or when disabled). Add() may be called from
// any thread; the other members from the owning thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace cmf::data {

class Progress {
 public:
  // LABEL starts the line ("hashing"). ENABLED false: never prints.
  Progress(std::string label, bool enabled);
  ~Progress();  // calls Finish()
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void Add(std::uint64_t files, std::uint64_t bytes) {
    files_.fetch_add(files, std::memory_order_relaxed);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  // Stops redrawing and erases the line.
  void Finish();

  // True when progress lines would be seen: standard output is a terminal.
  static bool Wanted();

 private:
  void Draw();

  std::string label_;
  std::atomic<std::uint64_t> files_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::mutex mutex_;
  std::condition_variable stop_;
  bool stopping_ = false;
  bool drawn_ = false;
  std::thread thread_;
  std::int64_t start_ns_ = 0;
};

}  // namespace cmf::data
