// The standard process_* metrics of the Prometheus client libraries, from
// /proc/self (Linux).
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "broker/metrics.h"

namespace starling::broker {
namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily one(std::string name, std::string help, MetricType type, double value) {
  prometheus::ClientMetric m;
  (type == MetricType::Counter ? m.counter.value : m.gauge.value) = value;
  return MetricFamily{std::move(name), std::move(help), type, {std::move(m)}};
}

double boot_time_seconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime") {
      in >> value;
      return value;
    }
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

}  // namespace

std::vector<MetricFamily> process_metrics() {
  std::vector<MetricFamily> out;
  // /proc/self/stat: fields after the ")" that ends the command name; utime
  // and stime are fields 14 and 15, starttime 22, vsize 23, rss 24 (pages).
  std::ifstream stat("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(text.substr(close + 2));
    std::vector<std::string> f;
    for (std::string v; fields >> v;) f.push_back(v);
    // f[0] is field 3 (state).
    const auto field = [&f](size_t n) { return n - 3 < f.size() ? std::stod(f[n - 3]) : 0.0; };
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    out.push_back(one("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                      MetricType::Counter, (field(14) + field(15)) / ticks));
    out.push_back(one("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                      MetricType::Gauge, boot_time_seconds() + field(22) / ticks));
    out.push_back(one("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge, field(23)));
    out.push_back(
        one("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge, field(24) * page));
  }
  std::error_code ec;
  double fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != decltype(it){};
       it.increment(ec)) {
    ++fds;
  }
  out.push_back(one("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, fds));
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0) {
    out.push_back(one("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
                      static_cast<double>(files.rlim_cur)));
  }
  return out;
}

}  // namespace starling::broker
