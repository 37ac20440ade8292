// The part of PyTorch's c10d that the update needs, as plain C functions for Rust: a TCPStore
// for rendezvous, a Gloo (CPU) or NCCL (CUDA) process group, and the collectives on tch
// tensors. The collectives are c10d's; this file only converts arguments and errors.
//
// Every function returns a C string the caller frees with spice_c10d_free_error when it
// fails, and NULL when it succeeds.

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>

#ifdef SPICE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

// The torch wheel ships c10d's headers but not Gloo's, and ProcessGroupGloo.hpp includes
// Gloo's, so it cannot be compiled here. This declares the two members of the class that we
// call; both are exported by libtorch_cpu. Every Gloo type in the class is held through a
// smart pointer, but we still never rely on its layout: the object is built in storage of
// our own (kGlooBytes) and released through its virtual destructor.
namespace c10d {
class ProcessGroupGloo : public Backend {
 public:
  struct Options : public Backend::Options {
    // Reads GLOO_SOCKET_IFNAME like torch.distributed does, else binds the host's address.
    static c10::intrusive_ptr<Options> create_default(std::chrono::milliseconds timeout);
  };
  ProcessGroupGloo(
      const c10::intrusive_ptr<Store>& store,
      int rank,
      int size,
      c10::intrusive_ptr<Options> options);
  ~ProcessGroupGloo() override;
};
}  // namespace c10d

namespace {

// sizeof(c10d::ProcessGroupGloo) is 488 bytes in torch 2.11 (the size its deleting destructor
// hands to operator delete); the margin covers later releases.
constexpr size_t kGlooBytes = 4096;

struct Store {
  c10::intrusive_ptr<c10d::Store> store;
};

struct Group {
  c10::intrusive_ptr<c10d::Backend> backend;
};

char* error(const std::string& message) {
  char* out = static_cast<char*>(std::malloc(message.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, message.c_str(), message.size() + 1);
  }
  return out;
}

template <typename F>
char* guarded(F&& body) {
  try {
    body();
    return nullptr;
  } catch (const c10::Error& e) {
    // what() carries a C++ backtrace of libtorch frames that means nothing to our users.
    return error(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return error(e.what());
  } catch (...) {
    return error("unknown C++ exception in c10d");
  }
}


c10d::ReduceOp reduce_op(int op) {
  switch (op) {
    case 0:
      return c10d::ReduceOp::SUM;
    case 1:
      return c10d::ReduceOp::MAX;
    case 2:
      return c10d::ReduceOp::MIN;
    default:
      throw std::invalid_argument("unknown reduce op " + std::to_string(op));
  }
}

void wait(const c10::intrusive_ptr<c10d::Work>& work) {
  // wait() rethrows a failed or timed-out collective as an exception.
  work->wait();
}

c10::intrusive_ptr<c10d::Backend> gloo_group(
    const c10::intrusive_ptr<c10d::Store>& store,
    int rank,
    int world,
    std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
  void* memory = ::operator new(kGlooBytes);
  c10d::ProcessGroupGloo* group = nullptr;
  try {
    group = new (memory) c10d::ProcessGroupGloo(store, rank, world, options);
  } catch (...) {
    ::operator delete(memory);
    throw;
  }
  return c10::intrusive_ptr<c10d::Backend>::unsafe_steal_from_new(group);
}

c10::intrusive_ptr<c10d::Backend> nccl_group(
    const c10::intrusive_ptr<c10d::Store>& store,
    int rank,
    int world,
    std::chrono::milliseconds timeout) {
#ifdef SPICE_C10D_NCCL
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, options);
#else
  (void)store;
  (void)rank;
  (void)world;
  (void)timeout;
  throw std::runtime_error("this build of spice has no NCCL: libtorch or its NCCL headers lack CUDA");
#endif
}

}  // namespace

extern "C" {

void spice_c10d_free_error(char* message) {
  std::free(message);
}

// A TCPStore: rank 0 serves it at host:port, every rank connects. `prefix` namespaces the keys
// so that several groups can share one server.
char* spice_c10d_store_new(
    const char* host,
    uint16_t port,
    int world,
    int is_server,
    int64_t timeout_ms,
    const char* prefix,
    Store** out) {
  return guarded([&] {
    c10d::TCPStoreOptions options;
    options.port = port;
    options.isServer = is_server != 0;
    options.numWorkers = static_cast<size_t>(world);
    options.waitWorkers = true;
    options.timeout = std::chrono::milliseconds(timeout_ms);
    c10::intrusive_ptr<c10d::Store> tcp =
        c10::make_intrusive<c10d::TCPStore>(std::string(host), options);
    auto store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    *out = new Store{store};
  });
}

void spice_c10d_store_free(Store* store) {
  delete store;
}

int spice_c10d_nccl_available() {
#ifdef SPICE_C10D_NCCL
  return 1;
#else
  return 0;
#endif
}

// `backend`: 0 Gloo, 1 NCCL (the Rust enum's values).
char* spice_c10d_group_new(
    Store* store,
    int backend,
    int rank,
    int world,
    int64_t timeout_ms,
    Group** out) {
  return guarded([&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    switch (backend) {
      case 0:
        *out = new Group{gloo_group(store->store, rank, world, timeout)};
        return;
      case 1:
        *out = new Group{nccl_group(store->store, rank, world, timeout)};
        return;
      default:
        throw std::invalid_argument("unknown c10d backend " + std::to_string(backend));
    }
  });
}

void spice_c10d_group_free(Group* group) {
  delete group;
}

// c10d's list form is one tensor per local device; we run one device per rank.
char* spice_c10d_allreduce(Group* group, at::Tensor* tensor, int op) {
  return guarded([&] {
    std::vector<at::Tensor> ts{*tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = reduce_op(op);
    wait(group->backend->allreduce(ts, options));
  });
}

char* spice_c10d_broadcast(Group* group, at::Tensor* tensor, int root) {
  return guarded([&] {
    std::vector<at::Tensor> ts{*tensor};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    wait(group->backend->broadcast(ts, options));
  });
}

// `output` holds world × input's numel, rank r's input at [r·numel, (r+1)·numel).
char* spice_c10d_all_gather(Group* group, at::Tensor* output, at::Tensor* input) {
  return guarded([&] {
    wait(group->backend->_allgather_base(*output, *input, c10d::AllgatherOptions()));
  });
}

// `input` holds world × output's numel; rank r receives the reduction of slice r.
char* spice_c10d_reduce_scatter(Group* group, at::Tensor* output, at::Tensor* input, int op) {
  return guarded([&] {
    c10d::ReduceScatterOptions options;
    options.reduceOp = reduce_op(op);
    wait(group->backend->_reduce_scatter_base(*output, *input, options));
  });
}

char* spice_c10d_barrier(Group* group) {
  return guarded([&] { wait(group->backend->barrier(c10d::BarrierOptions())); });
}

}  // extern "C"
