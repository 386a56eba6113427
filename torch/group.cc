// Process groups over c10d, PyTorch's distributed engine: TCPStore for the rendezvous,
// ProcessGroupGloo on the CPU and ProcessGroupNCCL on CUDA where the build has them. C++17;
// compiles against libtorch 1.13 (where the backends derive from ProcessGroup) and 2.x (where they
// derive from Backend: both have the collectives used here). See shim.h for the conventions.
#include "shim.h"
#include "group.h"
#include "shim_errors.h"

#if __has_include(<gloo/config.h>)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#endif

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(SPOTTRAIN_CUDA) && __has_include(<nccl.h>) && \
    __has_include(<torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace spottrain {
namespace {

#if TORCH_VERSION_MAJOR >= 2
using Backend = c10d::Backend;
#else
using Backend = c10d::ProcessGroup;
#endif

using std::chrono::milliseconds;

c10::intrusive_ptr<c10d::TCPStore> tcp_store(const std::string& host, int port, bool server,
                                             milliseconds timeout) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(port);
  o.isServer = server;
  o.waitWorkers = false;
  o.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(host, o);
}

std::string heartbeat_key(int rank) { return "spottrain/alive/" + std::to_string(rank); }

// Heartbeat adds 1 to this rank's key in the store every half second, on a thread of its own and
// through a connection of its own, until it is destroyed: the ranks whose count stands still are
// gone (killed, or frozen with their whole process).
class Heartbeat {
 public:
  Heartbeat(c10::intrusive_ptr<c10d::Store> store, int rank)
      : store_(std::move(store)), key_(heartbeat_key(rank)) {
    store_->add(key_, 1);
    thread_ = std::thread([this] { run(); });
  }
  ~Heartbeat() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, milliseconds(500), [this] { return stop_; })) {
      try {
        store_->add(key_, 1);
      } catch (...) {
        // The store is gone: Group_Missing reports it when a collective fails.
      }
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;
  std::string key_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

struct GroupState {
  int rank = 0;
  int world = 1;
  at::Device device{at::kCPU};  // where the backend takes its tensors
  c10::intrusive_ptr<c10d::TCPStore> server;  // when this process hosts the store
  c10::intrusive_ptr<c10d::Store> store;      // under the group's prefix
  c10::intrusive_ptr<Backend> backend;
  std::unique_ptr<Heartbeat> heartbeat;
};

GroupState* as_group(void* g) { return static_cast<GroupState*>(g); }
int group_rank(const GroupState* g) { return g->rank; }
int group_world(const GroupState* g) { return g->world; }

namespace {

c10::intrusive_ptr<Backend> new_backend(const std::string& name, const std::string& host,
                                        const std::string& bind,
                                        const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                        int world, milliseconds timeout) {
  if (name == "gloo") {
#ifdef USE_C10D_GLOO
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* iface = std::getenv("GLOO_SOCKET_IFNAME");
    if (!bind.empty()) {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(bind));
    } else if (iface != nullptr && *iface != '\0') {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
    } else if (host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1") {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
#else
    TORCH_CHECK(false, "this build of libtorch has no Gloo headers (on Debian: apt-get install libgloo-dev)");
#endif
  }
  if (name == "nccl") {
#ifdef USE_C10D_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, opts);
#else
    TORCH_CHECK(false, "this build has no NCCL (a CUDA build with -tags cuda and nccl.h is needed)");
#endif
  }
  TORCH_CHECK(false, "unknown backend ", name, " (gloo or nccl)");
}

void wait_all(std::vector<c10::intrusive_ptr<c10d::Work>>& works) {
  for (auto& w : works) w->wait();
}

// Bucket is a run of tensors of one dtype and device, flattened into one.
struct Bucket {
  std::vector<at::Tensor> tensors;
  at::Tensor flat;  // on the backend's device
};

std::vector<Bucket> buckets(GroupState* g, const std::vector<at::Tensor>& tensors,
                            int64_t bucket_bytes) {
  std::vector<Bucket> out;
  int64_t bytes = 0;
  for (const auto& t : tensors) {
    bool fits = !out.empty() && out.back().tensors.front().scalar_type() == t.scalar_type() &&
                out.back().tensors.front().device() == t.device() &&
                bytes + static_cast<int64_t>(t.nbytes()) <= bucket_bytes;
    if (!fits) {
      out.emplace_back();
      bytes = 0;
    }
    out.back().tensors.push_back(t);
    bytes += static_cast<int64_t>(t.nbytes());
  }
  for (auto& b : out) {
    std::vector<at::Tensor> flat;
    for (const auto& t : b.tensors) flat.push_back(t.detach().reshape({-1}));
    b.flat = at::cat(flat).to(g->device);
  }
  return out;
}

// unflatten copies each bucket's flat tensor back into its tensors.
void unflatten(std::vector<Bucket>& bs) {
  for (auto& b : bs) {
    int64_t offset = 0;
    for (auto& t : b.tensors) {
      int64_t n = t.numel();
      t.detach().copy_(b.flat.slice(0, offset, offset + n).view(t.sizes()));
      offset += n;
    }
  }
}

}  // namespace

void group_sum(GroupState* g, const std::vector<at::Tensor>& tensors, double scale,
               int64_t bucket_bytes) {
  at::NoGradGuard no_grad;
  if (tensors.size() == 1 && scale == 1 && tensors[0].is_contiguous() &&
      tensors[0].device() == g->device) {  // in place, no copies
    std::vector<at::Tensor> one{tensors[0]};
    g->backend->allreduce(one)->wait();
    return;
  }
  auto bs = buckets(g, tensors, bucket_bytes);
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (auto& b : bs) {
    if (scale != 1) b.flat.mul_(scale);
    std::vector<at::Tensor> one{b.flat};
    works.push_back(g->backend->allreduce(one));
  }
  wait_all(works);
  unflatten(bs);
}

void group_max(GroupState* g, int64_t* values, int64_t n) {
  auto t = at::from_blob(values, {n}, at::kLong).to(g->device, false, true);
  std::vector<at::Tensor> one{t};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::MAX;
  g->backend->allreduce(one, opts)->wait();
  std::memcpy(values, t.cpu().data_ptr<int64_t>(), sizeof(int64_t) * n);
}

void group_broadcast(GroupState* g, const std::vector<at::Tensor>& tensors, int root,
                     int64_t bucket_bytes) {
  at::NoGradGuard no_grad;
  auto bs = buckets(g, tensors, bucket_bytes);
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  c10d::BroadcastOptions opts;
  opts.rootRank = root;
  for (auto& b : bs) {
    std::vector<at::Tensor> one{b.flat};
    works.push_back(g->backend->broadcast(one, opts));
  }
  wait_all(works);
  if (g->rank != root) unflatten(bs);
}

}  // namespace spottrain

using spottrain::as_group;
using spottrain::GroupState;

extern "C" {

char* Store_NewServer(int port, int64_t timeout_ms, Store* out, int* bound) {
  SHIM_BEGIN
  TORCH_CHECK(port >= 0 && port < 65536, "port ", port, " out of range");
  auto server = spottrain::tcp_store("0.0.0.0", port, true, std::chrono::milliseconds(timeout_ms));
  *bound = server->getPort();
  *out = new c10::intrusive_ptr<c10d::TCPStore>(std::move(server));
  SHIM_END
}

void Store_Free(Store s) { delete static_cast<c10::intrusive_ptr<c10d::TCPStore>*>(s); }

char* StoreClient_New(const char* host, int port, const char* prefix, int64_t timeout_ms,
                      StoreClient* out) {
  SHIM_BEGIN
  TORCH_CHECK(port > 0 && port < 65536, "port ", port, " out of range");
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::PrefixStore>(
      prefix, spottrain::tcp_store(host, port, false, std::chrono::milliseconds(timeout_ms)));
  *out = new c10::intrusive_ptr<c10d::Store>(std::move(store));
  SHIM_END
}

char* StoreClient_Add(StoreClient s, const char* key, int64_t delta, int64_t* value) {
  SHIM_BEGIN
  *value = (*static_cast<c10::intrusive_ptr<c10d::Store>*>(s))->add(std::string("spottrain/") + key, delta);
  SHIM_END
}

void StoreClient_Free(StoreClient s) { delete static_cast<c10::intrusive_ptr<c10d::Store>*>(s); }

char* Group_New(const char* host, int port, int host_store, const char* prefix, int rank, int world,
                const char* backend, const char* device, const char* bind, int64_t timeout_ms,
                Group* out) {
  SHIM_BEGIN
  TORCH_CHECK(world > 0 && rank >= 0 && rank < world, "rank ", rank, " of a group of ", world);
  TORCH_CHECK(port > 0 && port < 65536, "port ", port, " out of range");
  std::chrono::milliseconds timeout(timeout_ms);
  auto g = std::make_unique<GroupState>();
  g->rank = rank;
  g->world = world;
  g->device = at::Device(std::string(std::strcmp(backend, "nccl") == 0 ? device : "cpu"));
  c10::intrusive_ptr<c10d::Store> base;
  if (host_store) {
    g->server = spottrain::tcp_store(host, port, true, timeout);
    base = g->server;
  } else {
    base = spottrain::tcp_store(host, port, false, timeout);
  }
  g->store = c10::make_intrusive<c10d::PrefixStore>(prefix, base);
  // The heartbeat has a connection of its own: a store connection serves one thread at a time.
  auto beat = c10::make_intrusive<c10d::PrefixStore>(
      prefix, spottrain::tcp_store(host, port, false, timeout));
  g->heartbeat = std::make_unique<spottrain::Heartbeat>(beat, rank);
  g->backend = spottrain::new_backend(backend, host, bind, g->store, rank, world, timeout);
  *out = g.release();
  SHIM_END
}

void Group_Free(Group g) { delete as_group(g); }

char* Group_AllreduceMaxInt64(Group g, int64_t* values, int64_t n) {
  SHIM_BEGIN
  spottrain::group_max(as_group(g), values, n);
  SHIM_END
}

char* Group_AllreduceSumFloat64(Group g, double* values, int64_t n) {
  SHIM_BEGIN
  auto t = at::from_blob(values, {n}, at::kDouble);
  spottrain::group_sum(as_group(g), {t}, 1, INT64_MAX);
  SHIM_END
}

char* Group_AllreduceSumFloat32(Group g, float* values, int64_t n) {
  SHIM_BEGIN
  auto t = at::from_blob(values, {n}, at::kFloat);
  spottrain::group_sum(as_group(g), {t}, 1, INT64_MAX);
  SHIM_END
}

char* Group_Barrier(Group g) {
  SHIM_BEGIN
  // A one-element reduction rather than the backend's barrier: Gloo's and NCCL's barriers differ
  // in what they wait for, an allreduce waits for every rank on both.
  int64_t v = 0;
  spottrain::group_max(as_group(g), &v, 1);
  SHIM_END
}

char* Group_Broadcast(Group g, int root, void** data, int64_t* len) {
  SHIM_BEGIN
  auto grp = as_group(g);
  TORCH_CHECK(root >= 0 && root < grp->world, "root ", root, " of a group of ", grp->world);
  bool sender = grp->rank == root;
  int64_t n = sender ? *len : 0;
  spottrain::group_broadcast(grp, {at::from_blob(&n, {1}, at::kLong)}, root, INT64_MAX);
  if (n == 0) {
    if (!sender) {
      *data = nullptr;
      *len = 0;
    }
    return nullptr;
  }
  at::Tensor bytes = sender ? at::from_blob(*data, {n}, at::kByte)
                            : at::empty({n}, at::kByte);
  spottrain::group_broadcast(grp, {bytes}, root, INT64_MAX);
  if (!sender) {
    void* copy = std::malloc(n);
    TORCH_CHECK(copy != nullptr, "out of memory receiving ", n, " bytes");
    std::memcpy(copy, bytes.data_ptr(), n);
    *data = copy;
    *len = n;
  }
  SHIM_END
}

char* Group_Gather(Group g, int root, const void* data, int64_t len, void** out, int64_t* lens) {
  SHIM_BEGIN
  auto grp = as_group(g);
  TORCH_CHECK(root >= 0 && root < grp->world, "root ", root, " of a group of ", grp->world);
  *out = nullptr;
  // Every rank's length, then every rank's bytes padded to the longest: allgather needs one size.
  std::vector<int64_t> all(grp->world, 0);
  all[grp->rank] = len;
  auto sizes = at::from_blob(all.data(), {grp->world}, at::kLong);
  spottrain::group_sum(grp, {sizes}, 1, INT64_MAX);
  int64_t longest = 1;
  for (int64_t n : all) longest = std::max(longest, n);
  auto mine = at::zeros({longest}, at::kByte);
  if (len > 0) std::memcpy(mine.data_ptr(), data, len);
  std::vector<at::Tensor> input{mine.to(grp->device)};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int r = 0; r < grp->world; r++) output[0].push_back(at::empty({longest}, input[0].options()));
  grp->backend->allgather(output, input)->wait();
  if (grp->rank != root) return nullptr;
  int64_t total = 0;
  for (int64_t n : all) total += n;
  char* buf = static_cast<char*>(std::malloc(std::max<int64_t>(total, 1)));
  TORCH_CHECK(buf != nullptr, "out of memory gathering ", total, " bytes");
  int64_t offset = 0;
  for (int r = 0; r < grp->world; r++) {
    auto part = output[0][r].cpu();
    if (all[r] > 0) std::memcpy(buf + offset, part.data_ptr(), all[r]);
    lens[r] = all[r];
    offset += all[r];
  }
  *out = buf;
  SHIM_END
}

char* Group_Add(Group g, const char* key, int64_t delta, int64_t* value) {
  SHIM_BEGIN
  *value = as_group(g)->store->add(std::string("spottrain/") + key, delta);
  SHIM_END
}

char* Group_Missing(Group g, int64_t wait_ms, int* missing) {
  SHIM_BEGIN
  auto grp = as_group(g);
  std::vector<int64_t> before(grp->world);
  for (int r = 0; r < grp->world; r++) before[r] = grp->store->add(spottrain::heartbeat_key(r), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
  for (int r = 0; r < grp->world; r++)
    missing[r] = grp->store->add(spottrain::heartbeat_key(r), 0) == before[r] ? 1 : 0;
  SHIM_END
}

}  // extern "C"
