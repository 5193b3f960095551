"""Compile every Triton kernel of the fused operator for a GPU target (sm_90: H100/H200) without a GPU.

Run as a script by test_triton_kernels.py, in a process without ``TRITON_INTERPRET`` (the interpreter
replaces the compiler). Triton lowers each kernel to PTX and runs its bundled ptxas to a cubin, so
type and lowering errors that the interpreter cannot see fail here. Prints one line per kernel.
"""
from __future__ import annotations

import itertools
import os
import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

assert os.environ.get("TRITON_INTERPRET", "0") != "1", "run without TRITON_INTERPRET"

from cbam.nn.fused import triton_kernels  # noqa: E402

MAP_POINTERS = {"x_ptr", "g_ptr", "dx_ptr"}  # pointers to full-size maps (the map's dtype)
MAPS = {"*fp16": "*fp32", "*bf16": "*fp32", "*fp32": "*fp32", "*fp64": "*fp64"}  # map dtype -> accumulation dtype


def signature(fn, map_dtype: str) -> dict[str, str]:
    sig = {}
    for i, name in enumerate(fn.arg_names):
        if i in fn.constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr") or name.endswith("_out"):
            full = name in MAP_POINTERS or (fn.__name__ == "gate" and name == "out_ptr")
            sig[name] = "*i64" if "idx" in name else map_dtype if full else MAPS[map_dtype]
        else:
            sig[name] = "i32"
    return sig


def main(arch: int) -> int:
    target = GPUTarget("cuda", arch, 32)
    for name in triton_kernels.__all__:
        fn = getattr(triton_kernels, name)
        flags = [fn.arg_names[i] for i in fn.constexprs if fn.arg_names[i] not in ("BLOCK", "BLOCK_C", "BLOCK_N", "FP64")]
        count = 0
        for map_dtype, value, blocks in itertools.product(MAPS, (True, False), ((16, 128), (128, 16))):
            consts = {f: value for f in flags}
            consts.update(FP64=map_dtype == "*fp64", BLOCK=1024, BLOCK_C=blocks[0], BLOCK_N=blocks[1])
            consts = {k: v for k, v in consts.items() if k in fn.arg_names}
            compiled = triton.compile(ASTSource(fn=fn, signature=signature(fn, map_dtype), constexprs=consts),
                                      target=target)
            assert compiled.asm["cubin"], name
            count += 1
        print(f"{name}: {count} variants compiled for sm_{arch}")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 90))
