// Growth and release for the ring buffers (and vectors) that hold
// per-connection and per-session backlogs: boost::circular_buffer allocates nothing while its
// capacity is 0, so an idle client costs nothing here.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#include <boost/circular_buffer.hpp>

namespace starling::broker {

// Appends, doubling the capacity when full.
template <class T>
void push_grow(boost::circular_buffer<T>& ring, T&& value) {
  if (ring.full()) ring.set_capacity(std::max<std::size_t>(8, ring.capacity() * 2));
  ring.push_back(std::move(value));
}

// Once empty, frees a buffer larger than `keep` elements: a drained ring keeps
// at most a small buffer for what comes next, not a burst's.
template <class T>
void release_if_drained(boost::circular_buffer<T>& ring, std::size_t keep) {
  if (ring.empty() && ring.capacity() > keep) boost::circular_buffer<T>().swap(ring);
}

// The same for a vector.
template <class T>
void release_if_drained(std::vector<T>& v, std::size_t keep) {
  if (v.empty() && v.capacity() > keep) std::vector<T>().swap(v);
}

}  // namespace starling::broker
