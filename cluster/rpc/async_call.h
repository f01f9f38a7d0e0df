// An asynchronous unary gRPC call to a peer and everything it needs alive
// until its callback ran (the callback keeps the shared_ptr).
#pragma once

#include <memory>

#include <grpcpp/grpcpp.h>

namespace starling::cluster {

template <typename Stub, typename Request, typename Reply>
struct AsyncCall {
  grpc::ClientContext context;
  Request request;
  Reply reply;
  std::shared_ptr<Stub> stub;
};

}  // namespace starling::cluster
