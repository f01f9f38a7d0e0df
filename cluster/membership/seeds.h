// --join: the addresses to sync with when joining. "host:port" seeds are
// dialled as written; a "dns:NAME:PORT" seed is every A and AAAA record of
// NAME, looked up again on each call, so pods that come later are found.
#pragma once

#include <string>
#include <vector>

#include "broker/config.h"

namespace starling::cluster {

// Each address once, "ip:port" or "[v6]:port" for looked-up records. A name
// that does not resolve contributes nothing (it may exist later).
std::vector<std::string> resolve_seeds(const std::vector<broker::JoinSeed>& seeds);

}  // namespace starling::cluster
