#include <stdint.h>

// The kernels, numbered as gpu.Kernel's constants.
enum {
  EMU_GEMM = 1, EMU_BIAS_ADD, EMU_COL_SUM, EMU_RELU, EMU_RELU_GRAD,
  EMU_SOFTMAX_XENT, EMU_ADAM, EMU_SUM_SQUARES, EMU_AXPY, EMU_SCALE,
};

#ifdef __cplusplus
extern "C"
#endif
int emu_launch(int kernel, long long gx, long long gy, long long bx, long long by, const uint64_t *args);
