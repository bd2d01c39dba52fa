// A stand-in for NVIDIA's libcuda.so.1 on a machine without a GPU: the
// driver calls that package gpu/cuda makes (through gorgonia.org/cu and
// its own cgo), with device memory in host memory, every copy and launch
// run at once on the calling thread (a legal order for CUDA's streams),
// events as timestamps, and the kernels of ../../../kernels/kernels.cu run
// by ../emu.cc instead of the PTX. It lets gpu/cuda's tests run their
// device code end to end on a CPU; what it cannot show is the PTX, the
// real driver and the real concurrency of the streams.
//
// Built by .ci/cuda.sh against NVIDIA's cuda.h (whose macros give the
// _v2 names the stub exports):
//
//	g++ -std=c++20 -O2 -shared -fPIC -I<cuda include> -o libcuda.so.1 fakecuda.cc
//
// and used with LD_LIBRARY_PATH and PENSTOCK_CUDA_EMULATED=1.
//
// Faults: with FAKECUDA_FAIL_LAUNCH=n in the environment, the n-th launch
// (from 1) of each context fails with CUDA_ERROR_LAUNCH_FAILED, and so,
// as after a real kernel fault, does every later call on the context but
// the frees and destroys.

#include <cuda.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../emu.cc"

namespace {

struct Function {
  int kernel;
  int nargs;
};

// The kernels by name, with their numbers (emu.h) and argument counts.
const struct {
  const char *name;
  Function f;
} functions[] = {
    {"gemm", {EMU_GEMM, 10}},          {"bias_add", {EMU_BIAS_ADD, 4}}, {"col_sum", {EMU_COL_SUM, 4}},
    {"relu", {EMU_RELU, 2}},           {"relu_grad", {EMU_RELU_GRAD, 3}}, {"softmax_xent", {EMU_SOFTMAX_XENT, 6}},
    {"adam", {EMU_ADAM, 9}},           {"sum_squares", {EMU_SUM_SQUARES, 3}}, {"axpy", {EMU_AXPY, 4}},
    {"scale", {EMU_SCALE, 3}},
};

struct Event {
  double ms = -1; // the time of its latest record, -1 before the first
};

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

bool initialized = false;
int contexts = 0;
long launches = 0;   // in the current context
bool fault = false;  // sticky, as a kernel fault is

// failed returns the sticky fault's error, if one happened.
CUresult failed() { return fault ? CUDA_ERROR_LAUNCH_FAILED : CUDA_SUCCESS; }

} // namespace

extern "C" {

CUresult cuInit(unsigned int) {
  initialized = true;
  return CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int *v) {
  *v = 11080;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int *n) {
  *n = 1;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice *d, int ordinal) {
  if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
  *d = 0;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice) {
  std::strncpy(name, "penstock emulated GPU (fakecuda)", len);
  if (len > 0) name[len - 1] = 0;
  return CUDA_SUCCESS;
}

CUresult cuGetErrorString(CUresult r, const char **s) {
  switch (r) {
  case CUDA_SUCCESS: *s = "no error"; break;
  case CUDA_ERROR_INVALID_VALUE: *s = "invalid argument"; break;
  case CUDA_ERROR_INVALID_HANDLE: *s = "invalid resource handle"; break;
  case CUDA_ERROR_NOT_FOUND: *s = "named symbol not found"; break;
  case CUDA_ERROR_LAUNCH_FAILED: *s = "unspecified launch failure"; break;
  default: *s = "error (fakecuda)";
  }
  return CUDA_SUCCESS;
}

CUresult cuCtxCreate(CUcontext *ctx, unsigned int, CUdevice) {
  contexts++;
  launches = 0;
  fault = false;
  *ctx = reinterpret_cast<CUcontext>(new int(contexts));
  return CUDA_SUCCESS;
}

CUresult cuCtxDestroy(CUcontext ctx) {
  if (ctx == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  delete reinterpret_cast<int *>(ctx);
  return CUDA_SUCCESS;
}

CUresult cuStreamCreate(CUstream *s, unsigned int) {
  *s = reinterpret_cast<CUstream>(new int(0));
  return CUDA_SUCCESS;
}

CUresult cuStreamDestroy(CUstream s) {
  if (s == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  delete reinterpret_cast<int *>(s);
  return CUDA_SUCCESS;
}

CUresult cuStreamSynchronize(CUstream) { return failed(); }
CUresult cuStreamWaitEvent(CUstream, CUevent e, unsigned int) { return e ? failed() : CUDA_ERROR_INVALID_HANDLE; }

CUresult cuModuleLoadDataEx(CUmodule *m, const void *image, unsigned int n, CUjit_option *opts, void **vals) {
  if (image == nullptr || std::strstr(static_cast<const char *>(image), ".target sm_75") == nullptr)
    return CUDA_ERROR_INVALID_IMAGE;
  // Answer the info log, as the driver does.
  for (unsigned int i = 0; i < n; i++) {
    if (opts[i] == CU_JIT_INFO_LOG_BUFFER) {
      char *buf = static_cast<char *>(vals[i]);
      for (unsigned int j = 0; j < n; j++)
        if (opts[j] == CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES && reinterpret_cast<uintptr_t>(vals[j]) > 0) {
          std::strncpy(buf, "fakecuda: the kernels run as C++ (emu.cc), not this PTX",
                       reinterpret_cast<uintptr_t>(vals[j]) - 1);
        }
    }
  }
  *m = reinterpret_cast<CUmodule>(new int(1));
  return CUDA_SUCCESS;
}

CUresult cuModuleUnload(CUmodule m) {
  if (m == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  delete reinterpret_cast<int *>(m);
  return CUDA_SUCCESS;
}

CUresult cuModuleGetFunction(CUfunction *f, CUmodule, const char *name) {
  for (auto &fn : functions)
    if (std::strcmp(fn.name, name) == 0) {
      *f = reinterpret_cast<CUfunction>(const_cast<Function *>(&fn.f));
      return CUDA_SUCCESS;
    }
  return CUDA_ERROR_NOT_FOUND;
}

CUresult cuMemAlloc(CUdeviceptr *p, size_t bytes) {
  if (fault) return failed();
  void *m = std::calloc(1, bytes);
  if (m == nullptr) return CUDA_ERROR_OUT_OF_MEMORY;
  *p = reinterpret_cast<CUdeviceptr>(m);
  return CUDA_SUCCESS;
}

CUresult cuMemFree(CUdeviceptr p) {
  std::free(reinterpret_cast<void *>(p));
  return CUDA_SUCCESS;
}

CUresult cuMemHostAlloc(void **p, size_t bytes, unsigned int) {
  *p = std::calloc(1, bytes);
  return *p ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult cuMemFreeHost(void *p) {
  std::free(p);
  return CUDA_SUCCESS;
}

CUresult cuMemcpyHtoDAsync(CUdeviceptr dst, const void *src, size_t n, CUstream) {
  if (fault) return failed();
  std::memcpy(reinterpret_cast<void *>(dst), src, n);
  return CUDA_SUCCESS;
}

CUresult cuMemcpyDtoHAsync(void *dst, CUdeviceptr src, size_t n, CUstream) {
  if (fault) return failed();
  std::memcpy(dst, reinterpret_cast<const void *>(src), n);
  return CUDA_SUCCESS;
}

CUresult cuMemcpyHtoD(CUdeviceptr dst, const void *src, size_t n) {
  std::memcpy(reinterpret_cast<void *>(dst), src, n);
  return CUDA_SUCCESS;
}

CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                        unsigned int by, unsigned int bz, unsigned int shared, CUstream, void **params,
                        void **extra) {
  if (f == nullptr || gz != 1 || bz != 1 || shared != 0 || extra != nullptr || params == nullptr)
    return CUDA_ERROR_INVALID_VALUE;
  if (fault) return failed();
  launches++;
  if (const char *n = std::getenv("FAKECUDA_FAIL_LAUNCH"); n != nullptr && std::atol(n) == launches) {
    fault = true;
    return failed();
  }
  auto fn = reinterpret_cast<const Function *>(f);
  uint64_t args[16];
  for (int i = 0; i < fn->nargs; i++) std::memcpy(&args[i], params[i], 8);
  return emu_launch(fn->kernel, gx, gy, bx, by, args) == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuEventCreate(CUevent *e, unsigned int) {
  *e = reinterpret_cast<CUevent>(new Event);
  return CUDA_SUCCESS;
}

CUresult cuEventDestroy(CUevent e) {
  if (e == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  delete reinterpret_cast<Event *>(e);
  return CUDA_SUCCESS;
}

CUresult cuEventRecord(CUevent e, CUstream) {
  if (e == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  if (fault) return failed();
  reinterpret_cast<Event *>(e)->ms = now_ms();
  return CUDA_SUCCESS;
}

CUresult cuEventQuery(CUevent e) { return e ? failed() : CUDA_ERROR_INVALID_HANDLE; }
CUresult cuEventSynchronize(CUevent e) { return e ? failed() : CUDA_ERROR_INVALID_HANDLE; }

CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b) {
  if (a == nullptr || b == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  auto ea = reinterpret_cast<Event *>(a), eb = reinterpret_cast<Event *>(b);
  if (ea->ms < 0 || eb->ms < 0) return CUDA_ERROR_INVALID_HANDLE;
  *ms = static_cast<float>(eb->ms - ea->ms);
  return CUDA_SUCCESS;
}

} // extern "C"
