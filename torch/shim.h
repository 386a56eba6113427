// C interface of spottrain's libtorch shim. Compiled as C by cgo, implemented in C++ (shim.cc).
//
// Conventions (see DESIGN.md):
//   - every function that can fail returns char*: NULL on success, else a malloc'd message that the
//     caller frees; no C++ exception ever crosses this boundary;
//   - out-values go through pointers;
//   - handles are opaque; Type_Verb names;
//   - caller memory (inputs, outputs, shapes) is read or written only during the call.
#ifndef SPOTTRAIN_SHIM_H
#define SPOTTRAIN_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void* Net;    // a model, its loss and its running loss sum, on one device
typedef void* Optim;  // an optimizer over one Net's parameters

// Element types of caller buffers.
enum { DTYPE_FLOAT32 = 0, DTYPE_INT64 = 1, DTYPE_FLOAT64 = 2, DTYPE_FLOAT16 = 3, DTYPE_BFLOAT16 = 4 };

// Optimizer kinds.
enum { OPTIM_ADAM = 0, OPTIM_ADAMW = 1, OPTIM_SGD = 2 };

// Process-wide settings.
char* Torch_Version(char** out);  // "1.13.0"; *out is malloc'd
void Torch_SetNumThreads(int n);
int Torch_GetNumThreads(void);
void Torch_ManualSeed(uint64_t seed);  // CPU and every CUDA device
char* Torch_SetDeterministic(int on);
int Torch_CudaDeviceCount(void);
// Torch_CheckDevice validates a concrete device name ("cpu", "cuda", "cuda:N") and that it exists.
char* Torch_CheckDevice(const char* name);

// Net_NewLSTM builds the LSTM forecaster: [B, L, in] -> LSTM(layers, hidden, batch_first) ->
// last step -> dropout -> Linear(hidden, horizon) -> [B, horizon]; with step_head, each of the
// last horizon steps -> dropout -> Linear(hidden, 1) -> [B, horizon]. loss 0 is MSE against
// [B, horizon]; 2, 3 and 4 (MSE, MAE, Huber with huber_delta) compare a*out + b with c for a
// target [B, 3, horizon] holding a, b and c.
char* Net_NewLSTM(int64_t in, int64_t hidden, int64_t layers, double dropout, int64_t horizon,
                  int step_head, int loss, double huber_delta, const char* device, Net* out);
// Net_NewResNet builds a ResNet (depth 18, 34, 50 or 101) for `classes` classes: the CIFAR stem
// (3x3 stride-1 convolution, no max-pool) or the ImageNet one, optionally the last BatchNorm of
// each block zero-initialised, channels scaled by width. [B, 3, H, W] -> [B, classes] logits;
// loss is cross-entropy against int64 class indices.
char* Net_NewResNet(int64_t depth, int64_t classes, int cifar_stem, int zero_init, double width,
                    const char* device, Net* out);
// Net_SetOptions sets the cross-entropy label smoothing, bfloat16 autocast (CUDA only) and the
// channels_last memory format of 4-D inputs and weights.
char* Net_SetOptions(Net net, double label_smoothing, int bf16, int channels_last);
void Torch_SetCudnnBenchmark(int on);
void Net_Free(Net net);
int64_t Net_NumParams(Net net);

// Net_Forward runs the model in eval mode without autograd on x (float32, shape xshape[0..xdim))
// and copies the output (float32) into out, which holds outLen elements.
char* Net_Forward(Net net, const float* x, const int64_t* xshape, int xdim, float* out,
                  int64_t outLen);

// Net_TrainStep is one whole training step in train mode: zero grads, forward, loss against y
// (ydtype, shape yshape[0..ydim)), backward, optional global-norm gradient clipping (clip > 0),
// optimizer step with learning rate lr. It adds the loss to the net's running sum on the device
// and never waits for the device.
char* Net_TrainStep(Net net, Optim opt, const float* x, const int64_t* xshape, int xdim,
                    const void* y, const int64_t* yshape, int ydim, int ydtype, double lr,
                    double clip);

// Net_TrainSteps runs Net_TrainStep `steps` times on the same batch inside C++: the pure C++ loop
// that benchmarks compare the Go loop with.
char* Net_TrainSteps(Net net, Optim opt, const float* x, const int64_t* xshape, int xdim,
                     const void* y, const int64_t* yshape, int ydim, int ydtype, double lr,
                     double clip, int64_t steps);

// Net_TakeLoss waits for the device, returns the sum and count of the losses since the last take,
// and resets them.
char* Net_TakeLoss(Net net, double* sum, int64_t* count);

typedef void* Snapshot;  // a frozen copy of what a checkpoint saves, in host memory

// Snapshot_New copies the net's parameters and buffers and the optimizer's state into host memory,
// and serializes the generators' states (the CPU's and every CUDA device's): the blocking part of
// a checkpoint. Training may go on while Snapshot_Serialize runs on another thread.
char* Snapshot_New(Net net, Optim opt, Snapshot* out);
// Snapshot_Serialize writes part `which` (SNAPSHOT_MODEL, _OPTIM or _RNG) with torch::serialize
// (the zip format of torch.save) into a malloc'd buffer that the caller frees.
char* Snapshot_Serialize(Snapshot snap, int which, void** data, int64_t* len);
void Snapshot_Free(Snapshot snap);
enum { SNAPSHOT_MODEL = 0, SNAPSHOT_OPTIM = 1, SNAPSHOT_RNG = 2 };

// Loading is strict: every parameter and buffer must be present with its shape; tensors move to
// the net's device, so state saved on one device loads on another.
char* Net_LoadState(Net net, const void* data, int64_t len);
char* Optim_LoadState(Optim opt, const void* data, int64_t len);
// Torch_SaveRNG serializes the generators' states (as a snapshot's SNAPSHOT_RNG part) into a
// malloc'd buffer that the caller frees.
char* Torch_SaveRNG(void** data, int64_t* len);
// Torch_LoadRNG restores generator states; CUDA states this machine has no device for are ignored.
char* Torch_LoadRNG(const void* data, int64_t len);

// The net's parameters and buffers in state_dict order and naming, for export: Net_StateCount
// gives their number; Net_StateInfo the name (malloc'd), dtype (DTYPE_*, plus DTYPE_FLOAT64,
// DTYPE_FLOAT16, DTYPE_BFLOAT16) and shape (up to 8 dims) of entry i; Net_StateCopy copies its
// data (on the host, little-endian, row-major) into out, which holds exactly nbytes.
char* Net_StateCount(Net net, int64_t* n);
char* Net_StateInfo(Net net, int64_t i, char** name, int* dtype, int64_t* shape, int* ndim);
char* Net_StateCopy(Net net, int64_t i, void* out, int64_t nbytes);

// foreach: SGD steps with multi-tensor kernels: 1 always, 0 never, -1 on CUDA only.
char* Optim_New(Net net, int kind, double lr, double weight_decay, double beta1, double beta2,
                double eps, double momentum, int nesterov, int foreach, Optim* out);
void Optim_Free(Optim opt);


// Process groups: data-parallel training over c10d (TCPStore rendezvous; Gloo on the CPU, NCCL on
// CUDA in builds that have it). Every collective is called by every rank of the group in the same
// order; each fails (returns a message) after the group's timeout when a peer does not take part.
typedef void* Group;  // this process's membership of a group, and its backend
typedef void* Store;  // a TCPStore server hosted by this process (a launcher's)

// Store_NewServer hosts c10d's TCPStore on TCP port (0: a free one) of every interface of this
// machine; *bound is the port it listens on.
char* Store_NewServer(int port, int64_t timeout_ms, Store* out, int* bound);
void Store_Free(Store s);

typedef void* StoreClient;  // a connection to a TCPStore, its keys under a prefix
// StoreClient_New connects to the TCPStore at host:port; every key is put under prefix. It fails
// after timeout_ms without a store there.
char* StoreClient_New(const char* host, int port, const char* prefix, int64_t timeout_ms,
                      StoreClient* out);
// StoreClient_Add adds delta to the counter key and sets *value to its new value.
char* StoreClient_Add(StoreClient s, const char* key, int64_t delta, int64_t* value);
void StoreClient_Free(StoreClient s);

// Group_New joins the group as rank of world: rendezvous through the TCPStore at host:port (this
// process hosts it when host_store is 1, else it connects to it), with every key under prefix;
// collectives run on backend "gloo" or "nccl", with tensors on device ("cpu", "cuda:N"). Gloo
// listens on and connects from the local address bind ("": the interface GLOO_SOCKET_IFNAME
// names, else 127.0.0.1 for a loopback host, else the one this machine's hostname resolves to).
// The rendezvous and every collective fail after timeout_ms. A thread of the group counts this
// rank's heartbeat in the store (see Group_Missing) until Group_Free.
char* Group_New(const char* host, int port, int host_store, const char* prefix, int rank, int world,
                const char* backend, const char* device, const char* bind, int64_t timeout_ms,
                Group* out);
void Group_Free(Group g);
// Element-wise reductions over the group, in place, of n values.
char* Group_AllreduceMaxInt64(Group g, int64_t* values, int64_t n);
char* Group_AllreduceSumFloat64(Group g, double* values, int64_t n);
char* Group_AllreduceSumFloat32(Group g, float* values, int64_t n);
char* Group_Barrier(Group g);
// Group_Broadcast sends root's bytes to every rank: on root, *data and *len are its input and stay
// the caller's; on the others, *data becomes a malloc'd copy (the caller frees it) of *len bytes.
char* Group_Broadcast(Group g, int root, void** data, int64_t* len);
// Group_Gather collects every rank's bytes on root: there *out is a malloc'd concatenation (the
// caller frees it) and lens (world entries) the length of each rank's part; elsewhere *out is NULL.
char* Group_Gather(Group g, int root, const void* data, int64_t len, void** out, int64_t* lens);
// Group_BroadcastNet copies root's parameters and buffers (only its buffers when buffers_only is
// 1: BatchNorm's running statistics, which each rank's forward passes change) to every rank's net.
char* Group_BroadcastNet(Group g, Net net, int root, int buffers_only);
// Group_Add adds delta to the counter key of the group's store and returns its new value in *value
// (delta 0 reads it without waiting; a key never added to counts 0).
char* Group_Add(Group g, const char* key, int64_t delta, int64_t* value);
// Group_Missing tells which ranks are gone: those whose heartbeat does not move within wait_ms
// (missing[r] = 1; world entries). It fails when the store cannot be reached (its host is gone).
char* Group_Missing(Group g, int64_t wait_ms, int* missing);

// Net_SetGroup makes the net's training steps data-parallel over g (NULL: alone again): after
// the backward pass, the gradients, each rank's multiplied by its weight (see Net_TrainShare), are
// summed over the group in buckets of about bucket_bytes, before clipping and the optimizer step;
// so is the loss; and the buffers (BatchNorm's statistics) are broadcast from rank 0 before each
// forward pass, as PyTorch's DistributedDataParallel does.
char* Net_SetGroup(Net net, Group g, int64_t bucket_bytes);
// Net_TrainShare is Net_TrainStep for one rank's share of a global batch: weight is the share's
// part of the batch (its samples over the batch's); x and y may be NULL (an empty share: the rank
// only joins the reductions). The nflags values of flags are replaced by their maximum over the
// group, after the backward pass and before the gradient sums: the group's decisions ride on the
// step, and the ranks meet there, so the sums that follow are timed without the wait for the
// slowest rank.
char* Net_TrainShare(Net net, Optim opt, const float* x, const int64_t* xshape, int xdim,
                     const void* y, const int64_t* yshape, int ydim, int ydtype, double lr,
                     double clip, double weight, int64_t* flags, int64_t nflags);
// Net_ReduceStats returns the number of gradient sums and the seconds spent in them (bucketing,
// the allreduce, the copies back) since the net joined its group.
void Net_ReduceStats(Net net, int64_t* calls, double* seconds);

#ifdef __cplusplus
}
#endif

#endif  // SPOTTRAIN_SHIM_H
