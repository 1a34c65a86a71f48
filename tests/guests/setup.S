/* The setup sectors of the bzImage-style guest: a real Linux boot-protocol 2.15 setup
 * header (boot.rst), for a 64-bit-only kernel loaded at 1 MiB. The 16-bit code is never
 * run by a 64-bit-protocol loader; if a BIOS loader ran it, it halts. The builder patches
 * syssize and init_size, as the kernel's own build tool does. */
    .code16
    .section .text
    .globl _setup
_setup:
    .org 0x1F1
setup_sects:        .byte 1
root_flags:         .word 0
syssize:            .long 0
ram_size:           .word 0
vid_mode:           .word 0xFFFF
root_dev:           .word 0
boot_flag:          .word 0xAA55
    .org 0x200
    .byte 0xEB, header_end - header  /* jmp short over the header; also its length */
header:             .ascii "HdrS"
version:            .word 0x020F
realmode_swtch:     .long 0
start_sys_seg:      .word 0
kernel_version:     .word 0
type_of_loader:     .byte 0
loadflags:          .byte 0x01        /* LOADED_HIGH */
setup_move_size:    .word 0x8000
code32_start:       .long 0x100000
ramdisk_image:      .long 0
ramdisk_size:       .long 0
bootsect_kludge:    .long 0
heap_end_ptr:       .word 0
ext_loader_ver:     .byte 0
ext_loader_type:    .byte 0
cmd_line_ptr:       .long 0
initrd_addr_max:    .long 0x7FFFFFFF
kernel_alignment:   .long 0x200000
relocatable_kernel: .byte 0
min_alignment:      .byte 21
xloadflags:         .word 0x0001      /* XLF_KERNEL_64 */
cmdline_size:       .long 2047
hardware_subarch:   .long 0
hardware_subarch_data: .quad 0
payload_offset:     .long 0
payload_length:     .long 0
setup_data:         .quad 0
pref_address:       .quad 0x100000
init_size:          .long 0
handover_offset:    .long 0
kernel_info_offset: .long 0
    .org 0x26C                        /* fails to assemble if the fields above overran */
header_end:
    cli
1:  hlt
    jmp 1b
    .org 1024
