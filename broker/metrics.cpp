#include "broker/metrics.h"

#include <prometheus/text_serializer.h>

namespace starling::broker {

Metrics::Metrics()
    : registry_{std::make_shared<prometheus::Registry>()},
      connections_total_{prometheus::BuildCounter()
                             .Name("starling_connections_total")
                             .Help("MQTT network connections accepted, on any listener.")
                             .Register(*registry_)
                             .Add({})} {}

std::string Metrics::serialize() const {
  return prometheus::TextSerializer{}.Serialize(registry_->Collect());
}

}  // namespace starling::broker
