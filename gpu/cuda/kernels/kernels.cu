// The kernels of gpu.Kernel, in CUDA-dialect C for clang without NVIDIA's
// headers or libraries (-nocudainc -nocudalib): the few declarations the
// CUDA headers would give are below, as clang builtins. The arithmetic is
// the CPU device's (gpu/kernels.go): float32 values, the same operation
// per element; the reductions (gemm, col_sum, sum_squares, the loss) add in
// another order, and sum_squares adds in float64 as the CPU does.
//
// Every integer argument is a long long and every float argument a float:
// the device passes each from an 8-byte variable (cu's Function.Launch
// copies 8 bytes per argument), a float in its low 4 bytes.
//
// Regenerate the PTX with go generate ./gpu/cuda (see gen.sh).

// (Package internal/emu defines them, and the builtins below, first: it
// compiles this file as C++ for the CPU.)
#ifndef __global__
#define __global__ __attribute__((global))
#define __shared__ __attribute__((shared))
#define __device__ __attribute__((device))
#endif

typedef long long i64;

static __device__ __inline__ i64 tid_x() { return __nvvm_read_ptx_sreg_tid_x(); }
static __device__ __inline__ i64 tid_y() { return __nvvm_read_ptx_sreg_tid_y(); }
static __device__ __inline__ i64 ntid_x() { return __nvvm_read_ptx_sreg_ntid_x(); }
static __device__ __inline__ i64 ctaid_x() { return __nvvm_read_ptx_sreg_ctaid_x(); }
static __device__ __inline__ i64 ctaid_y() { return __nvvm_read_ptx_sreg_ctaid_y(); }
static __device__ __inline__ i64 nctaid_x() { return __nvvm_read_ptx_sreg_nctaid_x(); }
static __device__ __inline__ i64 nctaid_y() { return __nvvm_read_ptx_sreg_nctaid_y(); }
static __device__ __inline__ void sync_threads() { __syncthreads(); }

// The first element of this thread in a grid-stride loop, and the stride.
static __device__ __inline__ i64 first() { return ctaid_x() * ntid_x() + tid_x(); }
static __device__ __inline__ i64 stride() { return nctaid_x() * ntid_x(); }

// expf and logf through the hardware's base-2 approximations (relative
// error about 2^-22), for want of libdevice.
static __device__ __inline__ float exp_f(float x) { return __nvvm_ex2_approx_f(x * 1.4426950408889634f); }
static __device__ __inline__ float log_f(float x) { return __nvvm_lg2_approx_f(x) * 0.6931471805599453f; }

#define TILE 16

// C (m×n) = alpha·op(A)·op(B) + beta·C, op(A) m×k, op(B) k×n, row-major;
// op(A)[i][p] is A[p*m+i] when ta, else A[i*k+p]; op(B)[p][j] is B[j*k+p]
// when tb, else B[p*n+j]. Blocks of TILE×TILE threads, one element of C
// each, over a grid of ceil(n/TILE) × at most 65535 blocks: a block
// takes the row tiles ctaid.y, ctaid.y + nctaid.y, …; beta 0 ignores C.
extern "C" __global__ void gemm(const float *A, const float *B, float *C, i64 m, i64 n, i64 k,
                                i64 ta, i64 tb, float alpha, float beta) {
  __shared__ float as[TILE][TILE + 1];
  __shared__ float bs[TILE][TILE + 1];
  i64 tx = tid_x(), ty = tid_y();
  i64 j = ctaid_x() * TILE + tx; // column of C
  for (i64 i0 = ctaid_y() * TILE; i0 < m; i0 += nctaid_y() * TILE) {
    i64 i = i0 + ty; // row of C
    float acc = 0;
    for (i64 p0 = 0; p0 < k; p0 += TILE) {
      // as[ty][tx] = op(A)[i][p0+tx]; bs[ty][tx] = op(B)[p0+ty][j]
      i64 pa = p0 + tx, pb = p0 + ty;
      float a = 0, b = 0;
      if (i < m && pa < k) a = ta ? A[pa * m + i] : A[i * k + pa];
      if (j < n && pb < k) b = tb ? B[j * k + pb] : B[pb * n + j];
      as[ty][tx] = a;
      bs[ty][tx] = b;
      __syncthreads();
      for (int q = 0; q < TILE; q++) acc += as[ty][q] * bs[q][tx];
      __syncthreads();
    }
    if (i < m && j < n) {
      float c = alpha * acc;
      if (beta != 0) c += beta * C[i * n + j];
      C[i * n + j] = c;
    }
  }
}

// Y[r][j] += b[j] over rows×cols.
extern "C" __global__ void bias_add(float *Y, const float *b, i64 rows, i64 cols) {
  i64 n = rows * cols;
  for (i64 e = first(); e < n; e += stride()) Y[e] += b[e % cols];
}

// s[j] = Σ_r X[r][j]: blocks of 32×32 threads, a block per 32 columns
// (gridDim.x = ceil(cols/32)); thread (x, y) adds the rows y, y+32, … of
// column 32·block+x, and the block adds its 32 partial sums.
extern "C" __global__ void col_sum(const float *X, float *s, i64 rows, i64 cols) {
  __shared__ float part[32][33];
  i64 tx = tid_x(), ty = tid_y();
  i64 j = ctaid_x() * 32 + tx;
  float acc = 0;
  if (j < cols)
    for (i64 r = ty; r < rows; r += 32) acc += X[r * cols + j];
  part[ty][tx] = acc;
  sync_threads();
  if (ty == 0 && j < cols) {
    float t = 0;
    for (int q = 0; q < 32; q++) t += part[q][tx];
    s[j] = t;
  }
}

// X = max(0, X) over n values (NaN becomes 0, as on the CPU).
extern "C" __global__ void relu(float *X, i64 n) {
  for (i64 e = first(); e < n; e += stride())
    if (!(X[e] > 0)) X[e] = 0;
}

// dY[i] = 0 where Y[i] ≤ 0 (or NaN).
extern "C" __global__ void relu_grad(float *dY, const float *Y, i64 n) {
  for (i64 e = first(); e < n; e += stride())
    if (!(Y[e] > 0)) dY[e] = 0;
}

// One block of 256 threads. dZ = (softmax(Z) − onehot(labels))/rows and
// loss[0] = the mean over rows of −log softmax(Z)[label]; a label outside
// 0 … cols−1 adds no loss and no onehot, as on the CPU.
extern "C" __global__ void softmax_xent(const float *Z, const float *labels, float *dZ, float *loss,
                                        i64 rows, i64 cols) {
  __shared__ float part[256];
  i64 t = tid_x(), nt = ntid_x();
  float scale = 1.0f / (float)rows;
  float total = 0;
  for (i64 r = t; r < rows; r += nt) {
    const float *z = Z + r * cols;
    float *d = dZ + r * cols;
    float top = z[0];
    for (i64 j = 1; j < cols; j++) top = z[j] > top ? z[j] : top;
    float sum = 0;
    for (i64 j = 0; j < cols; j++) {
      float e = exp_f(z[j] - top);
      d[j] = e;
      sum += e;
    }
    i64 label = (i64)labels[r];
    if (label >= 0 && label < cols) total += top + log_f(sum) - z[label];
    for (i64 j = 0; j < cols; j++) d[j] = (d[j] / sum - (j == label ? 1.0f : 0.0f)) * scale;
  }
  part[t] = total;
  sync_threads();
  for (i64 h = nt / 2; h > 0; h /= 2) {
    if (t < h) part[t] += part[t + h];
    sync_threads();
  }
  if (t == 0) loss[0] = part[0] / (float)rows;
}

// One Adam step over n values, as the CPU's: M, V the moments, rate the
// step size with the bias corrections folded in.
extern "C" __global__ void adam(float *W, const float *G, float *M, float *V, i64 n, float rate,
                                float beta1, float beta2, float epsilon) {
  for (i64 e = first(); e < n; e += stride()) {
    float g = G[e];
    float m = beta1 * M[e] + (1 - beta1) * g;
    float v = beta2 * V[e] + (1 - beta2) * g * g;
    M[e] = m;
    V[e] = v;
    W[e] = W[e] - rate * m / (__builtin_sqrtf(v) + epsilon);
  }
}

// One block of 256 threads: out[0] = Σ X[i]², added in float64.
extern "C" __global__ void sum_squares(const float *X, float *out, i64 n) {
  __shared__ double part[256];
  i64 t = tid_x(), nt = ntid_x();
  double acc = 0;
  for (i64 e = t; e < n; e += nt) acc += (double)X[e] * (double)X[e];
  part[t] = acc;
  sync_threads();
  for (i64 h = nt / 2; h > 0; h /= 2) {
    if (t < h) part[t] += part[t + h];
    sync_threads();
  }
  if (t == 0) out[0] = (float)part[0];
}

// Y += a·X over n values.
extern "C" __global__ void axpy(const float *X, float *Y, i64 n, float a) {
  for (i64 e = first(); e < n; e += stride()) Y[e] += a * X[e];
}

// X *= a over n values.
extern "C" __global__ void scale(float *X, i64 n, float a) {
  for (i64 e = first(); e < n; e += stride()) X[e] *= a;
}
