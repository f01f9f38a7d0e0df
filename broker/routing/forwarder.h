// Where else a message goes: the one narrow interface through which the broker
// core sees the cluster. A single node uses LocalOnly; the cluster issue
// implements it with gRPC forwarding.
#pragma once

#include "broker/message.h"

namespace starling::broker {

class Forwarder {
 public:
  virtual ~Forwarder() = default;
  // Called once per published message, after local delivery was queued.
  virtual void forward(const MessagePtr& message) = 0;
};

class LocalOnly final : public Forwarder {
 public:
  void forward(const MessagePtr&) override {}
};

}  // namespace starling::broker
