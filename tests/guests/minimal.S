/* The smallest PVH guest (benchmark): entered in 32-bit protected mode with paging off, it
 * writes the boot-timer byte (123 at 0xC0000000), then one byte, 'B', to COM1 (the 16550's
 * transmit register at 0x3F8, unpolled), then exits through port 0xF4 with 0. The 'B' is the
 * boot point a VMM without a boot-timer device (QEMU) shows too: the first byte of the VMM's
 * serial output, right after the boot-timer write. It never reads its start_info: it is the
 * floor of a boot. */
    .section .head.text, "ax"
    .code32
    .globl pvh_start
pvh_start:
    movb $123, 0xC0000000
    movw $0x3F8, %dx
    movb $'B', %al
    outb %al, %dx
    xorl %eax, %eax
    outb %al, $0xF4
1:  hlt
    jmp 1b
