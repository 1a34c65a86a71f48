/* The Xen ELF note that marks the image as PVH-bootable: XEN_ELFNOTE_PHYS32_ENTRY (18),
 * whose descriptor is the 32-bit physical entry point. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                       /* namesz */
    .long 4                       /* descsz */
    .long 18                      /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_start
