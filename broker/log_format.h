// --log-format json: one JSON object per line, for log pipelines (Loki,
// Elasticsearch, Cloud Logging) that would otherwise parse text.
#pragma once

#include <memory>

#include <spdlog/formatter.h>

namespace starling::broker {

// {"time":"2026-11-26T11:00:00.123Z","level":"info","logger":"starling","message":"..."}
std::unique_ptr<spdlog::formatter> make_json_log_formatter();

}  // namespace starling::broker
