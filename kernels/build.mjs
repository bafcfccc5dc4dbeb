// Placeholder: builds nothing yet. Replaced by the kernel build (C always, CUDA where nvcc exists).
console.log("kernels: nothing to build yet");
