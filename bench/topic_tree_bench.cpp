// Micro-benchmark of the topic tree at 1,000,000 subscriptions: insert, match
// (topics hitting a handful of subscriptions, and topics hitting none),
// unsubscribe, and the heap the tree holds per subscription.
//
//   topic_tree_bench [--benchmark_filter=...]
//
// The workload, fleet-telemetry shaped:
//   70% exact      fleet/r{region}/d{device}/telemetry   one per device
//   10% '+'        fleet/+/d{watched}/telemetry
//   10% '+'        fleet/r{region}/d{watched}/+
//   10% '#'        fleet/r{region}/d{watched}/#
// where the watched devices are 50,000 of the exact ones, so a topic of a
// watched device matches about seven subscriptions.

#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "broker/routing/topic_tree.h"

// Every allocation is counted, to show that match() makes none. Replacing the
// global operator new is fine here: this binary is only the benchmark.
namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace

// g++ 12 inlines these pairs into each other and then reports malloc/free as a
// new/delete mismatch; they are a matched pair by construction.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace {

using starling::broker::SharedGroup;
using starling::broker::SubscriberId;
using starling::broker::SubscriptionEntry;
using starling::broker::TopicTree;

constexpr size_t kSubscriptions = 1'000'000;
constexpr uint64_t kRegions = 16;
constexpr uint64_t kWatched = 50'000;
constexpr size_t kTopics = 4096;

std::string device_prefix(uint64_t device) {
  return "fleet/r" + std::to_string(device % kRegions) + "/d" + std::to_string(device);
}

struct Workload {
  std::vector<std::string> filters;  // filters[i] belongs to SubscriberId{i}
  std::vector<size_t> order;         // the insert (and unsubscribe) order
  std::vector<std::string> hit_topics;
  std::vector<std::string> miss_topics;
};

const Workload& workload() {
  static const Workload w = [] {
    Workload w;
    std::mt19937_64 rng(42);
    // Device i has an exact subscription when i % 10 < 7; watched devices are
    // drawn from those with i % 10 == 0.
    auto watched = [&] { return (rng() % kWatched) * 10; };
    w.filters.reserve(kSubscriptions);
    for (uint64_t i = 0; i < kSubscriptions; ++i) {
      const uint64_t kind = i % 10;
      if (kind < 7) {
        w.filters.push_back(device_prefix(i) + "/telemetry");
      } else if (kind == 7) {
        w.filters.push_back("fleet/+/d" + std::to_string(watched()) + "/telemetry");
      } else if (kind == 8) {
        w.filters.push_back(device_prefix(watched()) + "/+");
      } else {
        w.filters.push_back(device_prefix(watched()) + "/#");
      }
    }
    w.order.resize(kSubscriptions);
    for (size_t i = 0; i < kSubscriptions; ++i) w.order[i] = i;
    std::shuffle(w.order.begin(), w.order.end(), rng);
    for (size_t i = 0; i < kTopics; ++i) {
      w.hit_topics.push_back(device_prefix(watched()) + "/telemetry");
      // An unknown device in a known region: the walk gets as far as it can.
      w.miss_topics.push_back("fleet/r" + std::to_string(i % kRegions) + "/x" + std::to_string(i) + "/telemetry");
    }
    return w;
  }();
  return w;
}

SubscriptionEntry entry_for(size_t i) {
  SubscriptionEntry e;
  e.options.qos = static_cast<starling::mqtt::QoS>(i % 3);
  e.subscription_id = static_cast<uint32_t>(i % 7);
  return e;
}

void fill(TopicTree& tree, const Workload& w) {
  for (size_t i : w.order) tree.subscribe(w.filters[i], SubscriberId{i}, entry_for(i));
}

// Bytes the heap has handed out, mmapped blocks included (the node table's
// slot array is large enough to be one).
size_t heap_in_use() {
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

struct CountingVisitor {
  size_t reported = 0;
  void on_subscriber(SubscriberId, const SubscriptionEntry&) { ++reported; }
  void on_shared_group(const SharedGroup&) { ++reported; }
};

void BM_Insert(benchmark::State& state) {
  const Workload& w = workload();
  size_t bytes = 0, nodes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    {
      const size_t before = heap_in_use();
      auto tree = std::make_unique<TopicTree>();
      state.ResumeTiming();
      fill(*tree, w);
      state.PauseTiming();
      bytes = heap_in_use() - before;
      nodes = tree->node_count();
      if (tree->size() != kSubscriptions) state.SkipWithError("lost subscriptions");
    }  // the tree is freed untimed
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kSubscriptions));
  state.counters["bytes_per_sub"] = static_cast<double>(bytes) / kSubscriptions;
  state.counters["nodes"] = static_cast<double>(nodes);
}
BENCHMARK(BM_Insert)->Unit(benchmark::kMillisecond)->Iterations(3);

const TopicTree& full_tree() {
  static const std::unique_ptr<TopicTree> tree = [] {
    auto t = std::make_unique<TopicTree>();
    fill(*t, workload());
    return t;
  }();
  return *tree;
}

void match_topics(benchmark::State& state, const std::vector<std::string>& topics) {
  const TopicTree& tree = full_tree();
  size_t reported = 0, i = 0;
  const uint64_t allocations_before = g_allocations.load();
  for (auto _ : state) {
    CountingVisitor visitor;
    tree.match(topics[i++ % topics.size()], visitor);
    reported += visitor.reported;
    benchmark::DoNotOptimize(reported);
  }
  const double runs = static_cast<double>(state.iterations());
  state.counters["subs_per_match"] = static_cast<double>(reported) / runs;
  state.counters["allocs_per_match"] = static_cast<double>(g_allocations.load() - allocations_before) / runs;
}

void BM_MatchHit(benchmark::State& state) { match_topics(state, workload().hit_topics); }
BENCHMARK(BM_MatchHit);

void BM_MatchMiss(benchmark::State& state) { match_topics(state, workload().miss_topics); }
BENCHMARK(BM_MatchMiss);

void BM_Unsubscribe(benchmark::State& state) {
  const Workload& w = workload();
  size_t nodes_left = 0, bytes_left = 0;
  for (auto _ : state) {
    state.PauseTiming();
    {
      const size_t before = heap_in_use();
      auto tree = std::make_unique<TopicTree>();
      fill(*tree, w);
      state.ResumeTiming();
      for (size_t i : w.order) tree->unsubscribe(w.filters[i], SubscriberId{i});
      state.PauseTiming();
      nodes_left = tree->node_count();
      bytes_left = heap_in_use() - before;
    }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kSubscriptions));
  state.counters["nodes_left"] = static_cast<double>(nodes_left);
  // What an emptied tree still holds (its root and the TopicTree itself).
  state.counters["bytes_left"] = static_cast<double>(bytes_left);
}
BENCHMARK(BM_Unsubscribe)->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace

BENCHMARK_MAIN();
