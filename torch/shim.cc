// spottrain's libtorch shim: the only C++ of the project. C++17; compiles against libtorch 1.13
// (Debian, CPU) and 2.x (CUDA). See shim.h for the conventions.
#include "shim.h"
#include "group.h"
#include "shim_errors.h"

#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/autocast_mode.h>

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using spottrain::dup_message;

// The losses. LOSS_FORECAST_* take a target y of [B, 3, H]: a scale a, an offset b and a truth c
// per output, and compare a*out + b with c (mean over all B*H elements, so entries of a = b = c = 0
// add nothing and a share's loss is its part of the batch's).
enum LossKind {
  LOSS_MSE = 0,
  LOSS_CROSS_ENTROPY = 1,
  LOSS_FORECAST_MSE = 2,
  LOSS_FORECAST_MAE = 3,
  LOSS_FORECAST_HUBER = 4,
};

// Model is what every network of the shim is: a module with a single-tensor forward.
struct Model : torch::nn::Module {
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
};

// LSTMForecaster maps a window [B, L, F] to `horizon` values [B, horizon]: from the last step's
// output (Linear(hidden, horizon)), or with step_head from each of the last `horizon` steps'
// outputs (Linear(hidden, 1) applied to each).
struct LSTMForecaster : Model {
  LSTMForecaster(int64_t in, int64_t hidden, int64_t layers, double dropout, int64_t horizon,
                 bool step_head)
      : lstm(register_module(
            "lstm", torch::nn::LSTM(torch::nn::LSTMOptions(in, hidden)
                                        .num_layers(layers)
                                        .dropout(layers > 1 ? dropout : 0.0)
                                        .batch_first(true)))),
        drop(register_module("drop", torch::nn::Dropout(dropout))),
        head(register_module("head", torch::nn::Linear(hidden, step_head ? 1 : horizon))),
        horizon(horizon),
        step_head(step_head) {}

  torch::Tensor forward(const torch::Tensor& x) override {
    TORCH_CHECK(x.dim() == 3, "LSTM input must be [batch, steps, features], got ", x.sizes());
    TORCH_CHECK(!step_head || x.size(1) >= horizon, "LSTM input has ", x.size(1),
                " steps, fewer than the horizon ", horizon);
    auto out = std::get<0>(lstm->forward(x));  // [B, L, hidden]
    if (step_head) {
      auto tail = out.narrow(1, out.size(1) - horizon, horizon);  // [B, horizon, hidden]
      return head->forward(drop->forward(tail)).squeeze(-1);
    }
    auto last = out.select(1, out.size(1) - 1);
    return head->forward(drop->forward(last));
  }

  torch::nn::LSTM lstm;
  torch::nn::Dropout drop;
  torch::nn::Linear head;
  int64_t horizon;
  bool step_head;
};


torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

// BasicBlock and Bottleneck are torchvision's (v1.5: the stride sits on the 3x3 convolution), with
// its state_dict names.
struct BasicBlock : torch::nn::Module {
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t in, int64_t planes, int64_t stride, bool zero_init)
      : conv1(register_module("conv1", conv(in, planes, 3, stride))),
        bn1(register_module("bn1", torch::nn::BatchNorm2d(planes))),
        conv2(register_module("conv2", conv(planes, planes, 3, 1))),
        bn2(register_module("bn2", torch::nn::BatchNorm2d(planes))) {
    if (stride != 1 || in != planes) {
      downsample = register_module(
          "downsample", torch::nn::Sequential(conv(in, planes, 1, stride), torch::nn::BatchNorm2d(planes)));
    }
    if (zero_init) torch::nn::init::zeros_(bn2->weight);
  }
  torch::Tensor forward(torch::Tensor x) {
    auto identity = downsample ? downsample->forward(x) : x;
    auto out = torch::relu(bn1->forward(conv1->forward(x)));
    out = bn2->forward(conv2->forward(out));
    return torch::relu(out + identity);
  }
  torch::nn::Conv2d conv1;
  torch::nn::BatchNorm2d bn1;
  torch::nn::Conv2d conv2;
  torch::nn::BatchNorm2d bn2;
  torch::nn::Sequential downsample{nullptr};
};

struct Bottleneck : torch::nn::Module {
  static constexpr int64_t expansion = 4;
  Bottleneck(int64_t in, int64_t planes, int64_t stride, bool zero_init)
      : conv1(register_module("conv1", conv(in, planes, 1, 1))),
        bn1(register_module("bn1", torch::nn::BatchNorm2d(planes))),
        conv2(register_module("conv2", conv(planes, planes, 3, stride))),
        bn2(register_module("bn2", torch::nn::BatchNorm2d(planes))),
        conv3(register_module("conv3", conv(planes, planes * expansion, 1, 1))),
        bn3(register_module("bn3", torch::nn::BatchNorm2d(planes * expansion))) {
    if (stride != 1 || in != planes * expansion) {
      downsample = register_module(
          "downsample", torch::nn::Sequential(conv(in, planes * expansion, 1, stride),
                                              torch::nn::BatchNorm2d(planes * expansion)));
    }
    if (zero_init) torch::nn::init::zeros_(bn3->weight);
  }
  torch::Tensor forward(torch::Tensor x) {
    auto identity = downsample ? downsample->forward(x) : x;
    auto out = torch::relu(bn1->forward(conv1->forward(x)));
    out = torch::relu(bn2->forward(conv2->forward(out)));
    out = bn3->forward(conv3->forward(out));
    return torch::relu(out + identity);
  }
  torch::nn::Conv2d conv1;
  torch::nn::BatchNorm2d bn1;
  torch::nn::Conv2d conv2;
  torch::nn::BatchNorm2d bn2;
  torch::nn::Conv2d conv3;
  torch::nn::BatchNorm2d bn3;
  torch::nn::Sequential downsample{nullptr};
};

// ResNet is torchvision's ResNet with two stems: "imagenet" (7x7 stride-2 convolution, max-pool)
// and "cifar" (3x3 stride-1 convolution, no max-pool), and a width multiplier on every layer's
// channels (1 = the standard network).
struct ResNet : Model {
  ResNet(int64_t depth, int64_t classes, bool cifar_stem, bool zero_init, double width)
      : cifar(cifar_stem) {
    std::vector<int64_t> blocks;
    bool bottleneck = depth >= 50;
    switch (depth) {
      case 18: blocks = {2, 2, 2, 2}; break;
      case 34: blocks = {3, 4, 6, 3}; break;
      case 50: blocks = {3, 4, 6, 3}; break;
      case 101: blocks = {3, 4, 23, 3}; break;
      default: TORCH_CHECK(false, "ResNet depth must be 18, 34, 50 or 101, got ", depth);
    }
    TORCH_CHECK(classes > 0, "ResNet needs at least one class, got ", classes);
    TORCH_CHECK(width > 0 && width <= 16, "ResNet width multiplier must be in (0, 16], got ", width);
    auto channels = [width](int64_t c) { return std::max<int64_t>(1, std::llround(c * width)); };
    int64_t in = channels(64);
    conv1 = register_module("conv1", cifar ? conv(3, in, 3, 1) : conv(3, in, 7, 2));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(in));
    const int64_t planes[] = {64, 128, 256, 512};
    for (int i = 0; i < 4; i++) {
      torch::nn::Sequential layer;
      for (int64_t b = 0; b < blocks[i]; b++) {
        int64_t stride = (i > 0 && b == 0) ? 2 : 1;
        int64_t p = channels(planes[i]);
        if (bottleneck) {
          layer->push_back(std::make_shared<Bottleneck>(in, p, stride, zero_init));
          in = p * Bottleneck::expansion;
        } else {
          layer->push_back(std::make_shared<BasicBlock>(in, p, stride, zero_init));
          in = p * BasicBlock::expansion;
        }
      }
      layers.push_back(register_module("layer" + std::to_string(i + 1), layer));
    }
    fc = register_module("fc", torch::nn::Linear(in, classes));
    for (auto& m : modules(/*include_self=*/false)) {
      if (auto* c = m->as<torch::nn::Conv2d>())
        torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    }
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    TORCH_CHECK(x.dim() == 4 && x.size(1) == 3, "ResNet input must be [batch, 3, height, width], got ",
                x.sizes());
    auto out = torch::relu(bn1->forward(conv1->forward(x)));
    if (!cifar) out = torch::max_pool2d(out, 3, 2, 1);
    for (auto& layer : layers) out = layer->forward(out);
    out = torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1);
    return fc->forward(out);
  }

  bool cifar;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  std::vector<torch::nn::Sequential> layers;
  torch::nn::Linear fc{nullptr};
};

struct NetState {
  std::shared_ptr<Model> model;
  torch::Device device;
  LossKind loss;
  bool training;
  torch::Tensor loss_sum;  // on device; undefined until the first step after a take
  int64_t loss_count = 0;
  double label_smoothing = 0;  // cross-entropy
  double huber_delta = 1;      // LOSS_FORECAST_HUBER
  bool bf16 = false;           // autocast to bfloat16 (CUDA)
  bool channels_last = false;  // images and convolution weights in NHWC
  spottrain::GroupState* group = nullptr;  // data-parallel over this group; null: alone
  int64_t bucket_bytes = 0;
  int64_t reduce_calls = 0;
  double reduce_seconds = 0;
};

struct OptimState {
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  NetState* net;
  int kind;           // OPTIM_*
  bool multi_tensor;  // SGD steps with _foreach kernels
};

struct SnapshotState {
  std::vector<std::pair<std::string, torch::Tensor>> model;  // host copies
  std::unique_ptr<torch::optim::Optimizer> optim;  // the optimizer's groups, with host copies of its state
  std::string rng;                                 // serialized already: it is small
};

NetState* as_net(Net n) { return static_cast<NetState*>(n); }
OptimState* as_optim(Optim o) { return static_cast<OptimState*>(o); }
SnapshotState* as_snapshot(Snapshot s) { return static_cast<SnapshotState*>(s); }

torch::Device check_device(const char* name) {
  torch::Device dev{std::string(name)};
  if (dev.is_cuda()) {
    int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    TORCH_CHECK(count > 0, "device ", name, ": CUDA is not available (no GPU, or a CPU-only libtorch)");
    TORCH_CHECK(!dev.has_index() || dev.index() < count, "device ", name, ": only ", count,
                " CUDA device(s)");
  } else {
    TORCH_CHECK(dev.is_cpu(), "device ", name, ": only cpu and cuda devices are supported");
  }
  return dev;
}

std::vector<int64_t> shape_of(const int64_t* shape, int ndim) {
  TORCH_CHECK(ndim > 0 && ndim <= 8, "tensor rank must be 1..8, got ", ndim);
  std::vector<int64_t> s(shape, shape + ndim);
  for (int64_t d : s) TORCH_CHECK(d > 0, "tensor dimensions must be positive, got ", s);
  return s;
}

// host_tensor wraps caller memory without copying; it is valid for the duration of the call only.
torch::Tensor host_tensor(const void* data, const int64_t* shape, int ndim, int dtype) {
  TORCH_CHECK(data != nullptr, "null data pointer");
  TORCH_CHECK(dtype == DTYPE_FLOAT32 || dtype == DTYPE_INT64, "unknown dtype code ", dtype);
  auto opts = torch::TensorOptions().dtype(dtype == DTYPE_FLOAT32 ? torch::kFloat32 : torch::kInt64);
  return torch::from_blob(const_cast<void*>(data), shape_of(shape, ndim), opts);
}

// Autocast enables bfloat16 autocast on CUDA for its lifetime when on, as torch.autocast does.
class Autocast {
 public:
  explicit Autocast(bool on) : on_(on) {
    if (!on_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
#endif
  }
  ~Autocast() {
    if (!on_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
    at::autocast::set_enabled(false);
#endif
    at::autocast::clear_cache();
  }
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  bool on_;
};

// to_device moves a host batch to the net's device: on CUDA through pinned memory and an
// asynchronous copy (the caching host allocator keeps the pinned block until the copy is done).
torch::Tensor to_device(NetState* net, const torch::Tensor& host) {
  torch::Tensor t = host;
  if (net->device.is_cuda()) {
    auto pinned = torch::empty(host.sizes(), host.options().pinned_memory(true));
    pinned.copy_(host);
    t = pinned.to(net->device, /*non_blocking=*/true);
  }
  if (net->channels_last && t.dim() == 4) t = t.contiguous(at::MemoryFormat::ChannelsLast);
  return t;
}

void set_mode(NetState* net, bool training) {
  if (net->training != training) {
    net->model->train(training);
    net->training = training;
  }
}

torch::Tensor compute_loss(NetState* net, const torch::Tensor& out, const torch::Tensor& y) {
  switch (net->loss) {
    case LOSS_MSE:
      TORCH_CHECK(out.sizes() == y.sizes(), "target shape ", y.sizes(), " does not match output shape ",
                  out.sizes());
      return torch::mse_loss(out, y.to(out.dtype()));
    case LOSS_CROSS_ENTROPY:
      TORCH_CHECK(y.dim() == 1 && y.size(0) == out.size(0) && y.scalar_type() == torch::kInt64,
                  "targets must be int64 class indices [", out.size(0), "], got ", y.sizes(), " ",
                  y.scalar_type());
      return at::cross_entropy_loss(out.to(torch::kFloat32), y, {}, at::Reduction::Mean, -100,
                                    net->label_smoothing);
    case LOSS_FORECAST_MSE:
    case LOSS_FORECAST_MAE:
    case LOSS_FORECAST_HUBER: {
      TORCH_CHECK(y.dim() == 3 && y.size(0) == out.size(0) && y.size(1) == 3 && y.size(2) == out.size(1),
                  "forecast targets must be [", out.size(0), ", 3, ", out.size(1), "], got ", y.sizes());
      auto t = y.to(out.dtype());
      auto pred = t.select(1, 0) * out + t.select(1, 1);
      auto truth = t.select(1, 2);
      if (net->loss == LOSS_FORECAST_MSE) return torch::mse_loss(pred, truth);
      if (net->loss == LOSS_FORECAST_MAE) return torch::l1_loss(pred, truth);
      return torch::huber_loss(pred, truth, at::Reduction::Mean, net->huber_delta);
    }
  }
  TORCH_CHECK(false, "unknown loss kind");
}

// clip_grad_norm scales all gradients so that their global L2 norm is at most max_norm, exactly
// as torch.nn.utils.clip_grad_norm_ does, but without reading the norm back to the host.
void clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  std::vector<torch::Tensor> norms;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) {
      grads.push_back(p.grad());
      norms.push_back(p.grad().detach().norm(2));
    }
  }
  if (grads.empty()) return;
  auto total = torch::stack(norms).norm(2);
  auto coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
  for (auto& g : grads) g.detach().mul_(coef);
}

// The key of a parameter in an optimizer's state map: its TensorImpl's address, as a string in
// libtorch 1.x and as the pointer itself in later versions.
using StateKey = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;
template <typename K>
K state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<K, std::string>) {
    std::ostringstream s;  // what c10::guts::to_string does
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<K>(p.unsafeGetTensorImpl());
  }
}

// sgd_multi_tensor_step is torch::optim::SGD's step with multi-tensor (_foreach) kernels: a
// handful of kernel launches per step instead of several per parameter, as PyTorch's default SGD
// on CUDA. Same arithmetic, same SGDParamState (so checkpoints do not change).
void sgd_multi_tensor_step(torch::optim::SGD& opt) {
  using torch::optim::SGDOptions;
  using torch::optim::SGDParamState;
  torch::NoGradGuard no_grad;
  for (auto& group : opt.param_groups()) {
    const auto& o = static_cast<const SGDOptions&>(group.options());
    std::vector<torch::Tensor> params, grads;
    for (auto& p : group.params()) {
      if (p.grad().defined()) {
        params.push_back(p);
        grads.push_back(p.grad());
      }
    }
    if (params.empty()) continue;
    if (o.weight_decay() != 0) grads = at::_foreach_add(grads, params, o.weight_decay());
    if (o.momentum() != 0) {
      std::vector<torch::Tensor> bufs(params.size()), old_bufs, old_grads;
      for (size_t i = 0; i < params.size(); i++) {
        auto key = state_key<StateKey>(params[i]);
        auto it = opt.state().find(key);
        if (it == opt.state().end()) {  // the first step: the buffer starts as the gradient
          bufs[i] = grads[i].clone().detach();
          auto st = std::make_unique<SGDParamState>();
          st->momentum_buffer(bufs[i]);
          opt.state()[key] = std::move(st);
        } else {
          bufs[i] = static_cast<SGDParamState&>(*it->second).momentum_buffer();
          old_bufs.push_back(bufs[i]);
          old_grads.push_back(grads[i]);
        }
      }
      if (!old_bufs.empty()) {
        at::_foreach_mul_(old_bufs, o.momentum());
        at::_foreach_add_(old_bufs, old_grads, 1 - o.dampening());
      }
      grads = o.nesterov() ? at::_foreach_add(grads, bufs, o.momentum()) : bufs;
    }
    at::_foreach_add_(params, grads, -o.lr());
  }
}

void optimizer_step(NetState* net, OptimState* opt) {
  if (opt->kind == OPTIM_SGD && opt->multi_tensor) {
    sgd_multi_tensor_step(static_cast<torch::optim::SGD&>(*opt->optimizer));
  } else {
    opt->optimizer->step();
  }
}

// reduce_step makes the step's gradients and loss the group's: every rank's, times weight,
// summed. A rank with no samples (no loss) takes part with zeros, and ends with the group's
// gradients like the others. Gradients go in reverse order of the parameters (the order backward
// produces them in), the loss last.
torch::Tensor reduce_step(NetState* net, const torch::Tensor& loss, double weight) {
  auto start = std::chrono::steady_clock::now();
  std::vector<torch::Tensor> tensors;
  auto params = net->model->parameters();
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    if (!it->grad().defined()) it->mutable_grad() = torch::zeros_like(*it);
    tensors.push_back(it->grad());
  }
  auto l = loss.defined() ? loss.detach().to(torch::kFloat32).reshape({1}).clone()
                          : torch::zeros({1}, params.front().options().dtype(torch::kFloat32));
  tensors.push_back(l);
  spottrain::group_sum(net->group, tensors, weight, net->bucket_bytes);
  net->reduce_calls++;
  net->reduce_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return l.reshape({});
}

// train_step is one optimizer step on the samples x_host, y_host (undefined: none, in a group
// only), weighing weight in the group's batch; in a group, the flags (nflags of them) are agreed
// on between the backward pass and the gradient sums.
void train_step(NetState* net, OptimState* opt, const torch::Tensor& x_host,
                const torch::Tensor& y_host, double lr, double clip, double weight,
                int64_t* flags = nullptr, int64_t nflags = 0) {
  TORCH_CHECK(opt->net == net, "the optimizer was built for another net");
  TORCH_CHECK(x_host.defined() || net->group != nullptr, "a training step needs samples");
  set_mode(net, true);
  if (net->group != nullptr) {
    auto buffers = net->model->buffers();
    if (!buffers.empty()) spottrain::group_broadcast(net->group, buffers, 0, net->bucket_bytes);
  }
  for (auto& group : opt->optimizer->param_groups()) {
    group.options().set_lr(lr);
    for (auto& p : group.params()) p.mutable_grad() = torch::Tensor();  // zero_grad(set_to_none)
  }
  torch::Tensor loss;
  if (x_host.defined()) {
    auto x = to_device(net, x_host);
    auto y = to_device(net, y_host);
    {
      Autocast autocast(net->bf16);
      loss = compute_loss(net, net->model->forward(x), y);
    }
    loss.backward();
  }
  if (net->group != nullptr) {
    if (nflags > 0) spottrain::group_max(net->group, flags, nflags);
    loss = reduce_step(net, loss, weight);
  }
  if (clip > 0) clip_grad_norm(net->model->parameters(), clip);
  optimizer_step(net, opt);
  auto l = loss.detach();
  net->loss_sum = net->loss_sum.defined() ? net->loss_sum + l : l;
  net->loss_count++;
}

// named_state lists the parameters and buffers as a Python state_dict names them.
std::vector<std::pair<std::string, torch::Tensor>> named_state(NetState* net) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : net->model->named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : net->model->named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

std::string to_string(torch::serialize::OutputArchive& archive) {
  std::string bytes;
  archive.save_to([&bytes](const void* buf, size_t n) -> size_t {
    bytes.append(static_cast<const char*>(buf), n);
    return n;
  });
  return bytes;
}

// to_buffer copies bytes into a malloc'd buffer.
void to_buffer(const std::string& bytes, void** data, int64_t* len) {
  void* out = std::malloc(bytes.empty() ? 1 : bytes.size());
  TORCH_CHECK(out != nullptr, "out of memory copying ", bytes.size(), " bytes of state");
  std::memcpy(out, bytes.data(), bytes.size());
  *data = out;
  *len = static_cast<int64_t>(bytes.size());
}

void from_buffer(torch::serialize::InputArchive& archive, const void* data, int64_t len,
                 c10::optional<torch::Device> device) {
  TORCH_CHECK(data != nullptr && len > 0, "empty state");
  archive.load_from(static_cast<const char*>(data), static_cast<size_t>(len), device);
}

int dtype_code(c10::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return DTYPE_FLOAT32;
    case torch::kInt64: return DTYPE_INT64;
    case torch::kFloat64: return DTYPE_FLOAT64;
    case torch::kFloat16: return DTYPE_FLOAT16;
    case torch::kBFloat16: return DTYPE_BFLOAT16;
    default: TORCH_CHECK(false, "unsupported dtype ", t);
  }
}

// host_copy returns a copy of t in host memory (a copy even when t is there already).
torch::Tensor host_copy(const torch::Tensor& t) {
  if (!t.defined()) return t;
  return t.detach().to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true);
}

// copy_state returns a copy of one parameter's optimizer state with its tensors in host memory.
std::unique_ptr<torch::optim::OptimizerParamState> copy_state(
    const torch::optim::OptimizerParamState& st) {
  using namespace torch::optim;
  if (auto* a = dynamic_cast<const AdamParamState*>(&st)) {
    auto c = std::make_unique<AdamParamState>(*a);
    c->exp_avg(host_copy(a->exp_avg())).exp_avg_sq(host_copy(a->exp_avg_sq()));
    c->max_exp_avg_sq(host_copy(a->max_exp_avg_sq()));
    return c;
  }
  if (auto* a = dynamic_cast<const AdamWParamState*>(&st)) {
    auto c = std::make_unique<AdamWParamState>(*a);
    c->exp_avg(host_copy(a->exp_avg())).exp_avg_sq(host_copy(a->exp_avg_sq()));
    c->max_exp_avg_sq(host_copy(a->max_exp_avg_sq()));
    return c;
  }
  if (auto* g = dynamic_cast<const SGDParamState*>(&st)) {
    auto c = std::make_unique<SGDParamState>(*g);
    c->momentum_buffer(host_copy(g->momentum_buffer()));
    return c;
  }
  TORCH_CHECK(false, "cannot snapshot this optimizer's state");
}

// new_optimizer builds an optimizer of kind over params.
std::unique_ptr<torch::optim::Optimizer> new_optimizer(
    int kind, std::vector<torch::optim::OptimizerParamGroup> groups,
    const torch::optim::OptimizerOptions& defaults) {
  using namespace torch::optim;
  switch (kind) {
    case OPTIM_ADAM:
      return std::make_unique<Adam>(std::move(groups), static_cast<const AdamOptions&>(defaults));
    case OPTIM_ADAMW:
      return std::make_unique<AdamW>(std::move(groups), static_cast<const AdamWOptions&>(defaults));
    case OPTIM_SGD:
      return std::make_unique<SGD>(std::move(groups), static_cast<const SGDOptions&>(defaults));
  }
  TORCH_CHECK(false, "unknown optimizer kind ", kind);
}

std::vector<at::Generator> generators() {
  std::vector<at::Generator> gens{at::globalContext().defaultGenerator(torch::kCPU)};
  int n = Torch_CudaDeviceCount();
  for (int i = 0; i < n; i++)
    gens.push_back(at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, i)));
  return gens;
}

// rng_state serializes the states of the generators.
std::string rng_state() {
  torch::serialize::OutputArchive rng;
  auto gens = generators();
  for (size_t i = 0; i < gens.size(); i++) {
    std::lock_guard<std::mutex> lock(gens[i].mutex());
    rng.write(i == 0 ? "cpu" : "cuda" + std::to_string(i - 1), gens[i].get_state());
  }
  return to_string(rng);
}

}  // namespace

extern "C" {

char* Torch_Version(char** out) {
  SHIM_BEGIN
  *out = dup_message(TORCH_VERSION);
  SHIM_END
}

void Torch_SetNumThreads(int n) {
  at::set_num_threads(n);
  // Debian's libtorch calls OpenBLAS, which starts threads of its own inside each of libtorch's:
  // n x n threads on n cores made an LSTM step several times slower. BLAS runs single-threaded
  // inside libtorch's threads, unless OPENBLAS_NUM_THREADS says otherwise. (Other BLAS builds,
  // such as MKL in PyTorch's wheels, do not export this symbol: nothing to do.)
  using set_threads_fn = void (*)(int);
  auto set_blas_threads =
      reinterpret_cast<set_threads_fn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set_blas_threads != nullptr && std::getenv("OPENBLAS_NUM_THREADS") == nullptr)
    set_blas_threads(1);
}

int Torch_GetNumThreads(void) { return at::get_num_threads(); }

void Torch_ManualSeed(uint64_t seed) { torch::manual_seed(seed); }

char* Torch_SetDeterministic(int on) {
  SHIM_BEGIN
  at::globalContext().setDeterministicAlgorithms(on != 0, false);
  at::globalContext().setDeterministicCuDNN(on != 0);
  if (on) at::globalContext().setBenchmarkCuDNN(false);
  SHIM_END
}

int Torch_CudaDeviceCount(void) {
  try {
    return static_cast<int>(torch::cuda::device_count());
  } catch (...) {
    return 0;
  }
}

char* Torch_CheckDevice(const char* name) {
  SHIM_BEGIN
  check_device(name);
  SHIM_END
}

char* Net_NewLSTM(int64_t in, int64_t hidden, int64_t layers, double dropout, int64_t horizon,
                  int step_head, int loss, double huber_delta, const char* device, Net* out) {
  SHIM_BEGIN
  TORCH_CHECK(in > 0 && hidden > 0 && layers > 0 && horizon > 0,
              "LSTM sizes must be positive (input ", in, ", hidden ", hidden, ", layers ", layers,
              ", horizon ", horizon, ")");
  TORCH_CHECK(dropout >= 0 && dropout < 1, "LSTM dropout must be in [0, 1), got ", dropout);
  TORCH_CHECK(loss == LOSS_MSE || (loss >= LOSS_FORECAST_MSE && loss <= LOSS_FORECAST_HUBER),
              "unknown LSTM loss ", loss);
  TORCH_CHECK(huber_delta > 0, "Huber delta must be > 0, got ", huber_delta);
  auto dev = check_device(device);
  auto model = std::make_shared<LSTMForecaster>(in, hidden, layers, dropout, horizon, step_head != 0);
  model->to(dev);
  model->train(true);
  auto net = new NetState{model, dev, static_cast<LossKind>(loss), true, torch::Tensor(), 0};
  net->huber_delta = huber_delta;
  *out = net;
  SHIM_END
}

char* Net_NewResNet(int64_t depth, int64_t classes, int cifar_stem, int zero_init, double width,
                    const char* device, Net* out) {
  SHIM_BEGIN
  auto dev = check_device(device);
  auto model = std::make_shared<ResNet>(depth, classes, cifar_stem != 0, zero_init != 0, width);
  model->to(dev);
  model->train(true);
  *out = new NetState{model, dev, LOSS_CROSS_ENTROPY, true, torch::Tensor(), 0};
  SHIM_END
}

char* Net_SetOptions(Net n, double label_smoothing, int bf16, int channels_last) {
  SHIM_BEGIN
  auto net = as_net(n);
  TORCH_CHECK(label_smoothing >= 0 && label_smoothing < 1, "label smoothing must be in [0, 1), got ",
              label_smoothing);
  TORCH_CHECK(!bf16 || net->device.is_cuda(), "bf16 autocast needs a CUDA device, not ", net->device);
  net->label_smoothing = label_smoothing;
  net->bf16 = bf16 != 0;
  net->channels_last = channels_last != 0;
  torch::NoGradGuard no_grad;
  auto format = net->channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  for (auto& p : net->model->parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(format));
  SHIM_END
}

void Torch_SetCudnnBenchmark(int on) { at::globalContext().setBenchmarkCuDNN(on != 0); }

void Net_Free(Net net) { delete as_net(net); }

int64_t Net_NumParams(Net net) {
  int64_t n = 0;
  for (const auto& p : as_net(net)->model->parameters()) n += p.numel();
  return n;
}

char* Net_Forward(Net n, const float* x, const int64_t* xshape, int xdim, float* out,
                  int64_t outLen) {
  SHIM_BEGIN
  auto net = as_net(n);
  set_mode(net, false);
  torch::NoGradGuard no_grad;
  auto input = to_device(net, host_tensor(x, xshape, xdim, DTYPE_FLOAT32));
  torch::Tensor y;
  {
    Autocast autocast(net->bf16);
    y = net->model->forward(input);
  }
  y = y.to(torch::kCPU, torch::kFloat32).contiguous();
  TORCH_CHECK(y.numel() == outLen, "output has ", y.numel(), " elements (shape ", y.sizes(),
              "), buffer holds ", outLen);
  std::memcpy(out, y.data_ptr<float>(), sizeof(float) * outLen);
  SHIM_END
}

char* Net_TrainStep(Net n, Optim o, const float* x, const int64_t* xshape, int xdim, const void* y,
                    const int64_t* yshape, int ydim, int ydtype, double lr, double clip) {
  SHIM_BEGIN
  train_step(as_net(n), as_optim(o), host_tensor(x, xshape, xdim, DTYPE_FLOAT32),
             host_tensor(y, yshape, ydim, ydtype), lr, clip, 1);
  SHIM_END
}

char* Net_TrainShare(Net n, Optim o, const float* x, const int64_t* xshape, int xdim,
                     const void* y, const int64_t* yshape, int ydim, int ydtype, double lr,
                     double clip, double weight, int64_t* flags, int64_t nflags) {
  SHIM_BEGIN
  TORCH_CHECK(weight >= 0 && weight <= 1, "a share's weight must be in [0, 1], got ", weight);
  torch::Tensor xt, yt;
  if (x != nullptr) {
    xt = host_tensor(x, xshape, xdim, DTYPE_FLOAT32);
    yt = host_tensor(y, yshape, ydim, ydtype);
  }
  train_step(as_net(n), as_optim(o), xt, yt, lr, clip, weight, flags, nflags);
  SHIM_END
}

char* Net_SetGroup(Net n, Group g, int64_t bucket_bytes) {
  SHIM_BEGIN
  TORCH_CHECK(g == nullptr || bucket_bytes > 0, "bucket size must be positive, got ", bucket_bytes);
  auto net = as_net(n);
  net->group = g == nullptr ? nullptr : spottrain::as_group(g);
  net->bucket_bytes = bucket_bytes;
  net->reduce_calls = 0;
  net->reduce_seconds = 0;
  SHIM_END
}

void Net_ReduceStats(Net n, int64_t* calls, double* seconds) {
  *calls = as_net(n)->reduce_calls;
  *seconds = as_net(n)->reduce_seconds;
}

char* Group_BroadcastNet(Group g, Net n, int root, int buffers_only) {
  SHIM_BEGIN
  std::vector<torch::Tensor> state;
  if (buffers_only) {
    state = as_net(n)->model->buffers();
    if (state.empty()) return nullptr;
  } else {
    for (const auto& kv : named_state(as_net(n))) state.push_back(kv.second);
  }
  spottrain::group_broadcast(spottrain::as_group(g), state, root, int64_t(25) << 20);
  SHIM_END
}

char* Net_TrainSteps(Net n, Optim o, const float* x, const int64_t* xshape, int xdim,
                     const void* y, const int64_t* yshape, int ydim, int ydtype, double lr,
                     double clip, int64_t steps) {
  SHIM_BEGIN
  auto xt = host_tensor(x, xshape, xdim, DTYPE_FLOAT32);
  auto yt = host_tensor(y, yshape, ydim, ydtype);
  for (int64_t i = 0; i < steps; i++) train_step(as_net(n), as_optim(o), xt, yt, lr, clip, 1);
  SHIM_END
}

char* Net_TakeLoss(Net n, double* sum, int64_t* count) {
  SHIM_BEGIN
  auto net = as_net(n);
  *sum = net->loss_sum.defined() ? net->loss_sum.item<double>() : 0.0;
  *count = net->loss_count;
  net->loss_sum = torch::Tensor();
  net->loss_count = 0;
  SHIM_END
}

char* Snapshot_New(Net n, Optim o, Snapshot* out) {
  SHIM_BEGIN
  auto net = as_net(n);
  auto opt = as_optim(o);
  TORCH_CHECK(opt->net == net, "the optimizer was built for another net");
  auto snap = std::make_unique<SnapshotState>();
  for (const auto& kv : named_state(net)) snap->model.emplace_back(kv.first, host_copy(kv.second));

  // The copy optimizer has the live one's groups (it serializes their parameters' keys, never
  // their values) and host copies of its state, under the same keys.
  const auto& live = *opt->optimizer;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (const auto& g : live.param_groups())
    groups.emplace_back(g.params(), g.options().clone());
  snap->optim = new_optimizer(opt->kind, std::move(groups), live.defaults());
  for (const auto& kv : live.state()) snap->optim->state()[kv.first] = copy_state(*kv.second);

  snap->rng = rng_state();
  *out = snap.release();
  SHIM_END
}

char* Snapshot_Serialize(Snapshot s, int which, void** data, int64_t* len) {
  SHIM_BEGIN
  auto snap = as_snapshot(s);
  torch::serialize::OutputArchive archive;
  switch (which) {
    case SNAPSHOT_MODEL:
      for (const auto& kv : snap->model) archive.write(kv.first, kv.second);
      to_buffer(to_string(archive), data, len);
      break;
    case SNAPSHOT_OPTIM:
      snap->optim->save(archive);
      to_buffer(to_string(archive), data, len);
      break;
    case SNAPSHOT_RNG:
      to_buffer(snap->rng, data, len);
      break;
    default:
      TORCH_CHECK(false, "unknown snapshot part ", which);
  }
  SHIM_END
}

void Snapshot_Free(Snapshot s) { delete as_snapshot(s); }

char* Net_LoadState(Net n, const void* data, int64_t len) {
  SHIM_BEGIN
  auto net = as_net(n);
  torch::serialize::InputArchive archive;
  from_buffer(archive, data, len, net->device);
  auto state = named_state(net);
  auto keys = archive.keys();
  TORCH_CHECK(keys.size() == state.size(), "state has ", keys.size(), " tensors, the model ",
              state.size());
  torch::NoGradGuard no_grad;
  for (auto& kv : state) {
    torch::Tensor t;
    TORCH_CHECK(archive.try_read(kv.first, t), "state lacks ", kv.first);
    TORCH_CHECK(t.sizes() == kv.second.sizes(), kv.first, ": state has shape ", t.sizes(),
                ", the model ", kv.second.sizes());
    kv.second.copy_(t);
  }
  SHIM_END
}

char* Optim_LoadState(Optim o, const void* data, int64_t len) {
  SHIM_BEGIN
  auto opt = as_optim(o);
  torch::serialize::InputArchive archive;
  from_buffer(archive, data, len, opt->net->device);
  opt->optimizer->load(archive);
  SHIM_END
}

char* Torch_SaveRNG(void** data, int64_t* len) {
  SHIM_BEGIN
  to_buffer(rng_state(), data, len);
  SHIM_END
}

char* Torch_LoadRNG(const void* data, int64_t len) {
  SHIM_BEGIN
  torch::serialize::InputArchive archive;
  from_buffer(archive, data, len, torch::Device(torch::kCPU));
  auto gens = generators();
  for (size_t i = 0; i < gens.size(); i++) {
    torch::Tensor state;
    // A state saved on a machine with fewer GPUs leaves the other generators as they are.
    if (!archive.try_read(i == 0 ? "cpu" : "cuda" + std::to_string(i - 1), state)) {
      TORCH_CHECK(i > 0, "RNG state lacks the CPU generator");
      continue;
    }
    std::lock_guard<std::mutex> lock(gens[i].mutex());
    gens[i].set_state(state);
  }
  SHIM_END
}

char* Net_StateCount(Net n, int64_t* count) {
  SHIM_BEGIN
  *count = static_cast<int64_t>(named_state(as_net(n)).size());
  SHIM_END
}

char* Net_StateInfo(Net n, int64_t i, char** name, int* dtype, int64_t* shape, int* ndim) {
  SHIM_BEGIN
  auto state = named_state(as_net(n));
  TORCH_CHECK(i >= 0 && i < static_cast<int64_t>(state.size()), "state index ", i, " out of range");
  const auto& t = state[i].second;
  TORCH_CHECK(t.dim() <= 8, state[i].first, " has ", t.dim(), " dimensions, more than 8");
  *dtype = dtype_code(t.scalar_type());
  *ndim = static_cast<int>(t.dim());
  for (int64_t d = 0; d < t.dim(); d++) shape[d] = t.size(d);
  *name = dup_message(state[i].first.c_str());
  SHIM_END
}

char* Net_StateCopy(Net n, int64_t i, void* out, int64_t nbytes) {
  SHIM_BEGIN
  auto state = named_state(as_net(n));
  TORCH_CHECK(i >= 0 && i < static_cast<int64_t>(state.size()), "state index ", i, " out of range");
  auto t = state[i].second.detach().to(torch::kCPU).contiguous();
  int64_t size = static_cast<int64_t>(t.numel() * t.element_size());
  TORCH_CHECK(size == nbytes, state[i].first, " has ", size, " bytes, buffer ", nbytes);
  if (size > 0) std::memcpy(out, t.data_ptr(), size);
  SHIM_END
}

char* Optim_New(Net n, int kind, double lr, double weight_decay, double beta1, double beta2,
                double eps, double momentum, int nesterov, int foreach, Optim* out) {
  SHIM_BEGIN
  auto net = as_net(n);
  auto params = net->model->parameters();
  std::unique_ptr<torch::optim::Optimizer> opt;
  switch (kind) {
    case OPTIM_ADAM:
      opt = std::make_unique<torch::optim::Adam>(
          params, torch::optim::AdamOptions(lr)
                      .betas(std::make_tuple(beta1, beta2))
                      .eps(eps)
                      .weight_decay(weight_decay));
      break;
    case OPTIM_ADAMW:
      opt = std::make_unique<torch::optim::AdamW>(
          params, torch::optim::AdamWOptions(lr)
                      .betas(std::make_tuple(beta1, beta2))
                      .eps(eps)
                      .weight_decay(weight_decay));
      break;
    case OPTIM_SGD:
      TORCH_CHECK(!nesterov || momentum > 0, "SGD nesterov needs momentum > 0");
      opt = std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(lr)
                                                            .momentum(momentum)
                                                            .nesterov(nesterov != 0)
                                                            .weight_decay(weight_decay));
      break;
    default:
      TORCH_CHECK(false, "unknown optimizer kind ", kind);
  }
  bool multi_tensor = foreach > 0 || (foreach < 0 && net->device.is_cuda());
  *out = new OptimState{std::move(opt), net, kind, multi_tensor};
  SHIM_END
}

void Optim_Free(Optim o) { delete as_optim(o); }

}  // extern "C"
