/* Entries of the test guests. Both end in long mode on the guest's own page tables, which
 * identity-map the low 4 GiB (the VMM's tables map only 1 GiB, and the boot timer sits at
 * 3 GiB), then call guest_entry(protocol, boot_info). */

#define PROTOCOL_PVH 1
#define PROTOCOL_LINUX64 2
#define CR0_PE 0x1
#define CR0_ET 0x10
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define MSR_EFER 0xC0000080
#define EFER_LME 0x100

    .section .head.text, "ax"
    .code32
    .globl pvh_start
pvh_start:                        /* +0x000: PVH, 32-bit protected mode, paging off, EBX = start_info */
    cli
    movl %ebx, %esi
    movl $PROTOCOL_PVH, %edi
    movl $pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl $(CR0_PG | CR0_ET | CR0_PE), %eax
    movl %eax, %cr0
    lgdt gdt_pointer
    ljmp $0x08, $long_mode_pvh

    .code64
long_mode_pvh:
    movl %esi, %esi               /* upper halves are undefined after the mode switch */
    movl %edi, %edi
    jmp common_64

    .org 0x200
    .globl startup_64
startup_64:                       /* +0x200: 64-bit entry, RSI = boot_params */
    cli
    movl $PROTOCOL_LINUX64, %edi
    movq $pml4, %rax
    movq %rax, %cr3
    lgdt gdt_pointer
common_64:
    movl $0x10, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    movq $stack_top, %rsp
    pushq $0x08
    pushq $reloaded_cs
    lretq
reloaded_cs:
    xorl %ebp, %ebp
    call guest_entry
1:  hlt
    jmp 1b

    .section .data
    .balign 8
gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF      /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF      /* 0x10: data */
gdt_end:
gdt_pointer:
    .word gdt_end - gdt - 1
    .quad gdt

    .balign 4096
pml4:
    .quad pdpt + 0x3
    .fill 511, 8, 0
pdpt:
    .quad pd + 0x3
    .quad pd + 0x1000 + 0x3
    .quad pd + 0x2000 + 0x3
    .quad pd + 0x3000 + 0x3
    .fill 508, 8, 0
pd:                               /* 2048 x 2 MiB: RAM write-back below 3 GiB, uncached above */
    .set page, 0
    .rept 1536
    .quad page + 0x83
    .set page, page + 0x200000
    .endr
    .rept 512
    .quad page + 0x9B
    .set page, page + 0x200000
    .endr

    .section .bss
    .balign 16
    .space 16384
stack_top:
