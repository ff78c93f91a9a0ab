#!/usr/bin/env python3
"""Writes the 8-row block kernels of crates/mont2048-x86: `reduce8.s` (one block of the
Montgomery reduction) or, with the argument `mul`, `mul8.s` (one block of eight product rows).

With `sqr B` (B = 0..3) it writes `sqr8_B.s`: block i0 = 8B of the off-diagonal triangle of a
square, rows a[i0 + r] * a[i0 + r + 1..32].

Run from this directory: `python3 gen_reduce8.py > reduce8.s`,
`python3 gen_reduce8.py mul > mul8.s` and `python3 gen_reduce8.py sqr B > sqr8_B.s` (the outputs
are committed; the kernel includes them with include_str!). The algorithm and its register and
memory contract are described in src/x86.rs at `reduce`, `mul` and `sqr`.

Registers: r14 = T (the block's first limb t[i0]), r15 = the Modulus (p limbs at 0..256, n0'
at 256) or, for `mul`, the multiplicand b. Window (8 accumulator limbs, rotating): rax rcx
rsi rdi r8 r9 r10 r11; r12/r13 the mulx low/high halves; rdx the digit. Memory (reduce):
[T - 8] carry word from the previous block, [T - 16] scratch for the chunk-merge carry,
[T + 8r] (r < 8) the digits m_r after chunk 0, [T + 56] the carry word handed to the next
block. Memory (mul): the digits a[i0 + r] at [T + 512 + 8r], scratch at [T + 768]; no carry
word (the product of the first i0 + 8 limbs of a by b fits in t[0..i0 + 40]). Memory (sqr):
as mul with b = a, but the digits a[i0 + r] are read at [r15 + 8 (i0 + r)], the scratch is at
[T + 512], the chunks start at c0 = i0 / 8 (window t[2 i0 .. 2 i0 + 8]) and chunk c0 is the
triangle: row r multiplies only a[i0 + r + 1 .. i0 + 8].
"""
import sys

SQR = len(sys.argv) == 3 and sys.argv[1] == "sqr"
MUL = sys.argv[1:] == ["mul"] or SQR
C0 = int(sys.argv[2]) if SQR else 0
assert 0 <= C0 < 4
SCRATCH = 512 if SQR else 768 if MUL else -16

WINDOW = ["rax", "rcx", "rsi", "rdi", "r8", "r9", "r10", "r11"]
LO, HI = "r12", "r13"


def q(off):
    return f"qword ptr [r14 + {off}]" if off >= 0 else f"qword ptr [r14 - {-off}]"


def main():
    out = []
    emit = out.append
    w = list(WINDOW)
    # First chunk's window: t[i0 + 8 c0 .. + 8]; no merge carry yet.
    for k in range(8):
        emit(f"mov {w[k]}, {q(8 * (8 * C0 + k))}")
    emit(f"mov {q(SCRATCH)}, 0")
    for c in range(C0, 4):
        if c > C0:
            # Merge t[i0 + 8c .. + 8] into the window, carry-in from scratch, carry-out back.
            emit(f"mov {LO}, {q(SCRATCH)}")
            emit(f"neg {LO}")  # CF = (scratch != 0)
            for k in range(8):
                emit(f"adc {w[k]}, {q(8 * (8 * c + k))}")
            emit(f"mov {LO}, 0")
            emit(f"adc {LO}, 0")
            emit(f"mov {q(SCRATCH)}, {LO}")
        for r in range(8):
            pos = 8 * c + r
            if SQR:
                if c > C0 or r < 7:
                    emit(f"mov rdx, qword ptr [r15 + {8 * (8 * C0 + r)}]")
            elif MUL:
                emit(f"mov rdx, {q(512 + 8 * r)}")
            elif c == 0:
                emit(f"mov rdx, {w[0]}")
                emit("imul rdx, qword ptr [r15 + 256]")
                emit(f"mov {q(8 * r)}, rdx")
            else:
                emit(f"mov rdx, {q(8 * r)}")
            emit(f"xor {LO}d, {LO}d")
            if SQR and c == C0:
                # Triangle: only a[i0 + r + 1 .. i0 + 8]; limb `pos` gets no product.
                emit(f"mov {q(8 * pos)}, {w[0]}")
                emit(f"mov {w[0]}, 0")  # the row's new top limb
                for k in range(r + 1, 8):
                    emit(f"mulx {HI}, {LO}, qword ptr [r15 + {8 * (8 * c + k)}]")
                    emit(f"adcx {w[k]}, {LO}")
                    emit(f"adox {w[k + 1] if k < 7 else w[0]}, {HI}")
                if r < 7:
                    emit(f"adc {w[0]}, 0")
                w = w[1:] + w[:1]
                continue
            for k in range(8):
                emit(f"mulx {HI}, {LO}, qword ptr [r15 + {8 * (8 * c + k)}]")
                emit(f"adcx {w[k]}, {LO}")
                if k == 0:
                    # Limb `pos` is final for this block; in chunk 0 it is 0 by choice of m_r.
                    if c >= 1 or MUL:
                        emit(f"mov {q(8 * pos)}, {w[0]}")
                    emit(f"mov {w[0]}, 0")  # reused as the row's new top limb
                emit(f"adox {w[k + 1] if k < 7 else w[0]}, {HI}")
            emit(f"adc {w[0]}, 0")
            w = w[1:] + w[:1]
    # Final merge: window (limbs 32..40 of the block) + memory + scratch carry + previous
    # block's carry word; the carry out is the next block's carry word.
    emit(f"mov {LO}, {q(SCRATCH)}")
    if not MUL:
        emit(f"add {LO}, {q(-8)}")
    emit(f"add {w[0]}, {LO}")
    for k in range(1, 8):
        emit(f"adc {w[k]}, 0")
    emit(f"mov {HI}, 0")
    emit(f"adc {HI}, 0")
    emit(f"add {w[0]}, {q(256)}")
    for k in range(1, 8):
        emit(f"adc {w[k]}, {q(256 + 8 * k)}")
    emit(f"adc {HI}, 0")
    for k in range(8):
        emit(f"mov {q(256 + 8 * k)}, {w[k]}")
    if not MUL:
        emit(f"mov {q(56)}, {HI}")
    print("\n".join(out))


main()
