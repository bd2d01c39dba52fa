// The kernels of ../../kernels/kernels.cu compiled as C++ for the CPU:
// a block's threads are OS threads (std::thread), __syncthreads is a
// std::barrier over them, __shared__ arrays are static (a launch runs its
// blocks one after another, so one copy serves each block in turn), and
// the special registers are thread-local variables. The base-2
// approximations become exp2f and log2f.

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace emu {
thread_local long long tx, ty;
long long bx, by, ntx, nty, nbx, nby;
std::barrier<> *bar;
} // namespace emu

#define __global__
#define __shared__ static
#define __device__
#define __nvvm_read_ptx_sreg_tid_x() emu::tx
#define __nvvm_read_ptx_sreg_tid_y() emu::ty
#define __nvvm_read_ptx_sreg_ntid_x() emu::ntx
#define __nvvm_read_ptx_sreg_ctaid_x() emu::bx
#define __nvvm_read_ptx_sreg_ctaid_y() emu::by
#define __nvvm_read_ptx_sreg_nctaid_x() emu::nbx
#define __syncthreads() emu::bar->arrive_and_wait()
#define __nvvm_ex2_approx_f(x) exp2f(x)
#define __nvvm_lg2_approx_f(x) log2f(x)

#include "kernels_cu.h" // a link to ../../kernels/kernels.cu, so that go build tracks it

#include "emu.h"

namespace {
template <typename T> T at(const uint64_t *a, int i) {
  T v;
  std::memcpy(&v, &a[i], sizeof v); // a float: the low 4 bytes
  return v;
}
float *ptr(const uint64_t *a, int i) { return reinterpret_cast<float *>(a[i]); }
typedef long long i64;
} // namespace

extern "C" int emu_launch(int kernel, long long gx, long long gy, long long bx, long long by,
                          const uint64_t *a) {
  auto body = [&]() -> void {
    switch (kernel) {
    case EMU_GEMM:
      gemm(ptr(a, 0), ptr(a, 1), ptr(a, 2), at<i64>(a, 3), at<i64>(a, 4), at<i64>(a, 5), at<i64>(a, 6),
           at<i64>(a, 7), at<float>(a, 8), at<float>(a, 9));
      break;
    case EMU_BIAS_ADD: bias_add(ptr(a, 0), ptr(a, 1), at<i64>(a, 2), at<i64>(a, 3)); break;
    case EMU_COL_SUM: col_sum(ptr(a, 0), ptr(a, 1), at<i64>(a, 2), at<i64>(a, 3)); break;
    case EMU_RELU: relu(ptr(a, 0), at<i64>(a, 1)); break;
    case EMU_RELU_GRAD: relu_grad(ptr(a, 0), ptr(a, 1), at<i64>(a, 2)); break;
    case EMU_SOFTMAX_XENT:
      softmax_xent(ptr(a, 0), ptr(a, 1), ptr(a, 2), ptr(a, 3), at<i64>(a, 4), at<i64>(a, 5));
      break;
    case EMU_ADAM:
      adam(ptr(a, 0), ptr(a, 1), ptr(a, 2), ptr(a, 3), at<i64>(a, 4), at<float>(a, 5), at<float>(a, 6),
           at<float>(a, 7), at<float>(a, 8));
      break;
    case EMU_SUM_SQUARES: sum_squares(ptr(a, 0), ptr(a, 1), at<i64>(a, 2)); break;
    case EMU_AXPY: axpy(ptr(a, 0), ptr(a, 1), at<i64>(a, 2), at<float>(a, 3)); break;
    case EMU_SCALE: scale(ptr(a, 0), at<i64>(a, 1), at<float>(a, 2)); break;
    }
  };
  if (kernel < EMU_GEMM || kernel > EMU_SCALE) return -1;
  long long n = bx * by;
  std::barrier<> bar(n);
  emu::bar = &bar;
  emu::ntx = bx, emu::nty = by, emu::nbx = gx, emu::nby = gy;
  // The block's threads live for the whole launch and walk the blocks
  // together: a barrier between blocks lets the block indices change.
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (long long t = 0; t < n; t++) {
    threads.emplace_back([&, t]() {
      emu::tx = t % bx;
      emu::ty = t / bx;
      for (long long b = 0; b < gx * gy; b++) {
        if (t == 0) emu::bx = b % gx, emu::by = b / gx;
        bar.arrive_and_wait(); // the block index is set
        body();
        bar.arrive_and_wait(); // the block is done
      }
    });
  }
  for (auto &th : threads) th.join();
  return 0;
}
