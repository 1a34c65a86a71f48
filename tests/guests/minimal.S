/* The smallest PVH guest (benchmark): entered in 32-bit protected mode with paging off, it
 * writes the boot-timer byte (123 at 0xC0000000), then exits through port 0xF4 with 0.
 * It never reads its start_info: it is the floor of a boot. */
    .section .head.text, "ax"
    .code32
    .globl pvh_start
pvh_start:
    movb $123, 0xC0000000
    xorl %eax, %eax
    outb %al, $0xF4
1:  hlt
    jmp 1b
