// The process group's C++ face for shim.cc's training step (group.cc implements it). Internal:
// not part of the C interface of shim.h.
#ifndef SPOTTRAIN_GROUP_H
#define SPOTTRAIN_GROUP_H

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace spottrain {

struct GroupState;

GroupState* as_group(void* g);
int group_rank(const GroupState* g);
int group_world(const GroupState* g);

// group_sum sums tensors over the group in place, each first multiplied by scale (1: as they
// are). They are flattened into buckets of at most bucket_bytes (a tensor larger than that is a
// bucket of its own) of one dtype and device each, and the buckets are reduced together, so that
// the backend pipelines them.
void group_sum(GroupState* g, const std::vector<at::Tensor>& tensors, double scale,
               int64_t bucket_bytes);

// group_max replaces the n values by their maximum over the group.
void group_max(GroupState* g, int64_t* values, int64_t n);

// group_broadcast copies root's tensors to every rank's, in place, bucketed as group_sum does.
void group_broadcast(GroupState* g, const std::vector<at::Tensor>& tensors, int root,
                     int64_t bucket_bytes);

}  // namespace spottrain

#endif  // SPOTTRAIN_GROUP_H
