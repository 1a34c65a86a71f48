/* Shared declarations of the freestanding test guests (no libc: everything is here). */
#ifndef GUEST_H
#define GUEST_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef unsigned long size_t;

#define PROTOCOL_PVH 1
#define PROTOCOL_LINUX64 2

#define COM1 0x3F8
#define EXIT_PORT 0xF4
#define I8042_COMMAND 0x64
#define I8042_RESET 0xFE
#define BOOT_TIMER_ADDRESS 0xC0000000UL
#define BOOT_TIMER_MAGIC 123

static inline void outb(u16 port, u8 value) { __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 value; __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port)); return value; }

static inline u16 rd16(const void *p) { return *(const volatile u16 *)p; }
static inline u32 rd32(const void *p) { return *(const volatile u32 *)p; }
static inline u64 rd64(const void *p) { return *(const volatile u64 *)p; }

void *memset(void *dst, int value, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

void serial_init(void);
void putc(char c);
void puts(const char *s);                 /* no newline added */
void put_hex(u64 value);                  /* 0x-prefixed, lower case */
void put_dec(u64 value);
void put_str_n(const char *s, size_t n);  /* at most n bytes, stops at NUL */

/* Boot information, whichever protocol delivered it. */
struct memory_range { u64 address, size; u32 type; };
struct boot_info {
    int protocol;
    u64 info_address;
    const char *cmdline;
    u64 initrd_address, initrd_size;
    u64 rsdp;
    u32 memory_ranges;
    struct memory_range memory[128];
    /* linux64 only: setup header fields as the loader left them */
    u16 setup_version;
    u8 loadflags, type_of_loader;
};
void read_boot_info(int protocol, u64 address, struct boot_info *info);

/* Command line: value of key=... (pointer into the cmdline, ends at a space), or 0. */
const char *cmdline_value(const char *cmdline, const char *key, size_t *length);
u64 cmdline_number(const char *cmdline, const char *key, u64 fallback);
int cmdline_is(const char *cmdline, const char *key, const char *value);

u32 crc32(const u8 *data, u64 length);

void report_acpi(u64 rsdp);             /* prints acpi/cpus/device lines */
u64 find_rsdp(u64 hint);

void boot_timer_signal(void);
void __attribute__((noreturn)) exit_with(u8 code);
void __attribute__((noreturn)) i8042_reset(void);

void guest_main(struct boot_info *info);  /* each guest provides it */

#endif
