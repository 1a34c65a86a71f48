"""Classic BPF as seccomp uses it: decode, disassemble and emulate `struct sock_filter` arrays.

Pure Python, independent of libseccomp, so it can cross-check libseccomp's output against the
policy model (tests run every rule through both) and explain any program, including filters
read out of a live process. The emulator implements the instruction subset the kernel's seccomp
checker accepts (loads from `struct seccomp_data`, scratch memory, ALU, jumps, returns).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from jailer.policies import model
from jailer.policies.errors import PolicyError

SECCOMP_DATA_SIZE = 64
MEMWORDS = 16
_INSN = struct.Struct("<HBBI")

# Instruction classes, sizes, modes, operations (linux/filter.h, linux/bpf_common.h).
LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
MODE_IMM, MODE_ABS, MODE_IND, MODE_MEM, MODE_LEN, MODE_MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
SRC_X = 0x08
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
_ALU_OPS = {0x00: "+", 0x10: "-", 0x20: "*", 0x30: "/", 0x40: "|", 0x50: "&", 0x60: "<<", 0x70: ">>", 0x90: "%", 0xA0: "^"}
_JUMP_OPS = {JEQ: "==", JGT: ">", JGE: ">=", JSET: "&"}
_INVERSE = {JEQ: "!=", JGT: "<=", JGE: "<", JSET: "& (none of)"}


@dataclass(frozen=True)
class Insn:
    code: int
    jt: int
    jf: int
    k: int

    @property
    def cls(self) -> int:
        return self.code & 0x07


@dataclass(frozen=True)
class SeccompData:
    """`struct seccomp_data`: what a filter sees of a system call."""

    nr: int
    arch: int = 0xC000003E
    instruction_pointer: int = 0
    args: tuple[int, ...] = (0, 0, 0, 0, 0, 0)

    def to_bytes(self) -> bytes:
        args = tuple(self.args) + (0,) * (6 - len(self.args))
        return struct.pack(
            "<iIQ6Q",
            _signed32(self.nr),
            self.arch,
            self.instruction_pointer & model.U64,
            *(arg & model.U64 for arg in args),
        )


@dataclass
class Run:
    """The result of emulating a program: the return value and the instructions executed."""

    ret: int
    trace: list[int] = field(default_factory=list)

    @property
    def action(self) -> model.Action:
        return model.action_from_ret(self.ret)


def decode(program: bytes) -> list[Insn]:
    if not program or len(program) % _INSN.size:
        raise PolicyError(f"not a BPF program: {len(program)} bytes is not a positive multiple of 8")
    return [Insn(*_INSN.unpack_from(program, offset)) for offset in range(0, len(program), _INSN.size)]


def encode(insns: list[Insn]) -> bytes:
    return b"".join(_INSN.pack(i.code, i.jt, i.jf, i.k) for i in insns)


def emulate(program: bytes | list[Insn], data: SeccompData) -> Run:
    """Run the program on `data` exactly as the kernel would; PolicyError for invalid programs."""
    insns = decode(program) if isinstance(program, (bytes, bytearray)) else program
    packet = data.to_bytes()
    a = x = 0
    memory = [0] * MEMWORDS
    pc = 0
    trace: list[int] = []
    while True:
        if not 0 <= pc < len(insns):
            raise PolicyError(f"BPF program runs off its end at instruction {pc}")
        insn = insns[pc]
        trace.append(pc)
        cls, k = insn.cls, insn.k
        if cls in (LD, LDX):
            mode = insn.code & 0xE0
            if mode == MODE_ABS and cls == LD:
                if insn.code & 0x18:
                    raise PolicyError(f"instruction {pc}: only 32-bit loads of seccomp_data are allowed")
                value = _load_word(packet, k, pc)
            elif mode == MODE_IMM:
                value = k
            elif mode == MODE_MEM:
                value = memory[_memory_slot(k, pc)]
            elif mode == MODE_LEN:
                value = SECCOMP_DATA_SIZE
            else:
                raise PolicyError(f"instruction {pc}: load mode {insn.code:#06x} is not allowed in seccomp")
            if cls == LD:
                a = value
            else:
                x = value
        elif cls == ST:
            memory[_memory_slot(k, pc)] = a
        elif cls == STX:
            memory[_memory_slot(k, pc)] = x
        elif cls == ALU:
            a = _alu(insn, a, x, pc)
        elif cls == JMP:
            op = insn.code & 0xF0
            if op == JA:
                pc += 1 + k
                continue
            operand = x if insn.code & SRC_X else k
            taken = {JEQ: a == operand, JGT: a > operand, JGE: a >= operand, JSET: bool(a & operand)}.get(op)
            if taken is None:
                raise PolicyError(f"instruction {pc}: unknown jump {insn.code:#06x}")
            pc += 1 + (insn.jt if taken else insn.jf)
            continue
        elif cls == RET:
            source = insn.code & 0x18
            return Run(ret=a if source == 0x10 else (x if source == SRC_X else k), trace=trace)
        else:  # MISC
            if insn.code & 0xF8 == 0x80:
                a = x
            else:
                x = a
        pc += 1


def _load_word(packet: bytes, offset: int, pc: int) -> int:
    if offset % 4 or offset + 4 > SECCOMP_DATA_SIZE:
        raise PolicyError(f"instruction {pc}: load of seccomp_data offset {offset} is not an aligned 32-bit field")
    return int.from_bytes(packet[offset : offset + 4], "little")


def _memory_slot(k: int, pc: int) -> int:
    if k >= MEMWORDS:
        raise PolicyError(f"instruction {pc}: scratch memory slot {k} does not exist")
    return k


def _alu(insn: Insn, a: int, x: int, pc: int) -> int:
    op = insn.code & 0xF0
    if op == 0x80:
        return (-a) & model.U32
    operand = x if insn.code & SRC_X else insn.k
    if op in (0x30, 0x90) and operand == 0:
        raise PolicyError(f"instruction {pc}: division by zero")
    result = {
        0x00: lambda: a + operand,
        0x10: lambda: a - operand,
        0x20: lambda: a * operand,
        0x30: lambda: a // operand,
        0x40: lambda: a | operand,
        0x50: lambda: a & operand,
        0x60: lambda: a << operand if operand < 32 else 0,
        0x70: lambda: a >> operand if operand < 32 else 0,
        0x90: lambda: a % operand,
        0xA0: lambda: a ^ operand,
    }.get(op)
    if result is None:
        raise PolicyError(f"instruction {pc}: unknown ALU operation {insn.code:#06x}")
    return result() & model.U32


def _signed32(value: int) -> int:
    value &= model.U32
    return value - (1 << 32) if value & 0x80000000 else value


def field_name(offset: int) -> str:
    """What a seccomp_data offset holds, e.g. `args[1].lo`."""
    if offset == 0:
        return "nr"
    if offset == 4:
        return "arch"
    if offset in (8, 12):
        return "ip." + ("lo" if offset == 8 else "hi")
    if 16 <= offset < SECCOMP_DATA_SIZE:
        index, half = divmod(offset - 16, 8)
        return f"args[{index}].{'lo' if half == 0 else 'hi'}"
    return f"[{offset}]"


def action_text(ret: int) -> str:
    action = model.action_from_ret(ret)
    return str(action).upper()


@dataclass(frozen=True)
class Line:
    """One disassembled instruction: raw fields and a readable rendering."""

    index: int
    insn: Insn
    text: str

    def to_json(self) -> dict[str, object]:
        return {"line": self.index, "code": self.insn.code, "jt": self.insn.jt, "jf": self.insn.jf, "k": self.insn.k, "text": self.text}


def disassemble(program: bytes, arch: str = "x86_64") -> list[Line]:
    """Readable listing, naming syscalls, architectures and argument halves where it can."""
    from jailer.policies import syscalls

    insns = decode(program)
    arch_names = {value: name for name, value in syscalls.AUDIT_ARCH.items()}
    lines = []
    loaded = "A"
    for index, insn in enumerate(insns):
        cls, k = insn.cls, insn.k
        if cls == LD and insn.code & 0xE0 == MODE_ABS:
            loaded = field_name(k)
            text = f"A = {loaded}"
        elif cls in (LD, LDX):
            register = "A" if cls == LD else "X"
            mode = insn.code & 0xE0
            source = {MODE_IMM: f"{k:#x}", MODE_MEM: f"mem[{k}]", MODE_LEN: "sizeof(seccomp_data)"}.get(mode, f"?{insn.code:#x}")
            text = f"{register} = {source}"
            if register == "A":
                loaded = "A"
        elif cls == ST:
            text = f"mem[{k}] = A"
        elif cls == STX:
            text = f"mem[{k}] = X"
        elif cls == ALU:
            op = insn.code & 0xF0
            if op == 0x80:
                text = "A = -A"
            else:
                operand = "X" if insn.code & SRC_X else f"{k:#x}"
                text = f"A {_ALU_OPS.get(op, '?')}= {operand}"
            loaded = f"({loaded} {_ALU_OPS.get(op, '?')} {operand})" if op != 0x80 else loaded
        elif cls == JMP:
            op = insn.code & 0xF0
            if op == JA:
                text = f"goto {index + 1 + k:04d}"
            elif op not in _JUMP_OPS:
                text = f"invalid jump {insn.code:#06x}"
            else:
                operand = "X" if insn.code & SRC_X else _constant(loaded, k, arch, arch_names)
                true_target, false_target = index + 1 + insn.jt, index + 1 + insn.jf
                if insn.jt == 0:
                    text = f"if !({loaded} {_JUMP_OPS[op]} {operand}) goto {false_target:04d}"
                elif insn.jf == 0:
                    text = f"if ({loaded} {_JUMP_OPS[op]} {operand}) goto {true_target:04d}"
                else:
                    text = f"if ({loaded} {_JUMP_OPS[op]} {operand}) goto {true_target:04d} else goto {false_target:04d}"
        elif cls == RET:
            source = insn.code & 0x18
            text = "return A" if source == 0x10 else ("return X" if source == SRC_X else f"return {action_text(k)}")
        else:
            text = "A = X" if insn.code & 0xF8 == 0x80 else "X = A"
        lines.append(Line(index, insn, text))
    return lines


def _constant(loaded: str, k: int, arch: str, arch_names: dict[int, str]) -> str:
    from jailer.policies import syscalls

    if loaded == "nr":
        name = syscalls.name(k, arch) if k < syscalls.X32_SYSCALL_BIT else None
        return name or f"{k:#x}"
    if loaded == "arch":
        return f"AUDIT_ARCH_{arch_names[k].upper()}" if k in arch_names else f"{k:#x}"
    return f"{k:#x}"


def format_listing(lines: list[Line]) -> str:
    return "\n".join(
        f"{line.index:04d}: {line.insn.code:#06x} {line.insn.jt:3d} {line.insn.jf:3d} {line.insn.k:#010x}  {line.text}"
        for line in lines
    )
