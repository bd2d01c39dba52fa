// The kernels of ../../kernels/kernels.cu compiled as C++ for the CPU:
// a block's threads are coroutines (ucontext) on the calling thread, run
// in turn; __syncthreads switches to the next, so that a round over all of
// them passes one barrier (the kernels reach their barriers in uniform
// control flow). __shared__ arrays are static: the blocks run one after
// another. The special registers are variables that the scheduler sets
// before it resumes a thread. The base-2 approximations become exp2f and
// log2f.

#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

namespace emu {
long long tx, ty, bx, by, ntx, nty, nbx, nby;
void sync();
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
#define __nvvm_read_ptx_sreg_nctaid_y() emu::nby
#define __syncthreads() emu::sync()
#define __nvvm_ex2_approx_f(x) exp2f(x)
#define __nvvm_lg2_approx_f(x) log2f(x)

#include "kernels_cu.h" // a link to ../../kernels/kernels.cu, so that go build tracks it

#include "emu.h"

namespace emu {
int run(long long gx, long long gy, long long bx, long long by, std::function<void()> body);
}

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
  return emu::run(gx, gy, bx, by, body);
}

namespace emu {
namespace {
constexpr size_t stack_bytes = 64 << 10;
ucontext_t sched;
std::vector<ucontext_t> threads;
std::vector<std::vector<char>> stacks;
std::vector<bool> finished;
size_t cur;
std::function<void()> *kernel_body;

void entry() {
  (*kernel_body)();
  finished[cur] = true; // then back to sched, the uc_link
}
} // namespace

void sync() { swapcontext(&threads[cur], &sched); }

int run(long long gx, long long gy, long long bdx, long long bdy, std::function<void()> body) {
  size_t n = bdx * bdy;
  kernel_body = &body;
  ntx = bdx, nty = bdy, nbx = gx, nby = gy;
  if (threads.size() < n) {
    threads.resize(n);
    stacks.resize(n);
    for (auto &st : stacks) st.resize(stack_bytes);
  }
  finished.assign(n, false);
  for (long long b = 0; b < gx * gy; b++) {
    bx = b % gx, by = b / gx;
    for (size_t t = 0; t < n; t++) {
      getcontext(&threads[t]);
      threads[t].uc_stack.ss_sp = stacks[t].data();
      threads[t].uc_stack.ss_size = stacks[t].size();
      threads[t].uc_link = &sched;
      makecontext(&threads[t], entry, 0);
      finished[t] = false;
    }
    for (size_t left = n; left > 0;) {
      left = 0;
      for (size_t t = 0; t < n; t++) {
        if (finished[t]) continue;
        cur = t, tx = t % bdx, ty = t / bdx;
        swapcontext(&sched, &threads[t]);
        if (!finished[t]) left++;
      }
    }
  }
  return 0;
}
} // namespace emu
