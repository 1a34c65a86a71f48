/* Serial output, string helpers, boot-information parsing and the ways a guest ends. */
#include "guest.h"

void *memset(void *dst, int value, size_t n)
{
    u8 *d = dst;
    while (n--)
        *d++ = (u8)value;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    u8 *d = dst;
    const u8 *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const u8 *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* 16550: 8N1, FIFOs on, no interrupts; output polls THRE like the kernel's early console. */
void serial_init(void)
{
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1 + 0, 0x01);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);
    outb(COM1 + 2, 0xC7);
    outb(COM1 + 4, 0x0B);
}

void putc(char c)
{
    int spins = 100000;
    while (!(inb(COM1 + 5) & 0x20) && --spins)
        ;
    outb(COM1, (u8)c);
}

void puts(const char *s)
{
    while (*s)
        putc(*s++);
}

void put_str_n(const char *s, size_t n)
{
    while (n-- && *s)
        putc(*s++);
}

void put_hex(u64 value)
{
    char digits[17];
    int i = 16;
    digits[i] = 0;
    do {
        digits[--i] = "0123456789abcdef"[value & 0xF];
        value >>= 4;
    } while (value);
    puts("0x");
    puts(&digits[i]);
}

void put_dec(u64 value)
{
    char digits[21];
    int i = 20;
    digits[i] = 0;
    do {
        digits[--i] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    puts(&digits[i]);
}

/* CRC-32 (IEEE, as zlib.crc32), table-driven: guests run slowly on software virtualization. */
u32 crc32(const u8 *data, u64 length)
{
    static u32 table[256];
    u32 crc = 0xFFFFFFFF;
    if (!table[1])
        for (u32 n = 0; n < 256; n++) {
            u32 c = n;
            for (int bit = 0; bit < 8; bit++)
                c = (c >> 1) ^ (0xEDB88320 & -(c & 1));
            table[n] = c;
        }
    for (u64 i = 0; i < length; i++)
        crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

const char *cmdline_value(const char *cmdline, const char *key, size_t *length)
{
    size_t key_length = strlen(key);
    const char *p = cmdline;
    while (p && *p) {
        while (*p == ' ')
            p++;
        if (!memcmp(p, key, key_length) && p[key_length] == '=') {
            const char *value = p + key_length + 1;
            size_t n = 0;
            while (value[n] && value[n] != ' ')
                n++;
            *length = n;
            return value;
        }
        while (*p && *p != ' ')
            p++;
    }
    return 0;
}

u64 cmdline_number(const char *cmdline, const char *key, u64 fallback)
{
    size_t length;
    const char *value = cmdline_value(cmdline, key, &length);
    u64 number = 0;
    if (!value || !length)
        return fallback;
    for (size_t i = 0; i < length; i++) {
        if (value[i] < '0' || value[i] > '9')
            return fallback;
        number = number * 10 + (u64)(value[i] - '0');
    }
    return number;
}

int cmdline_is(const char *cmdline, const char *key, const char *value)
{
    size_t length;
    const char *found = cmdline_value(cmdline, key, &length);
    return found && length == strlen(value) && !memcmp(found, value, length);
}

/* struct boot_params offsets (arch/x86/include/uapi/asm/bootparam.h). */
static void read_zero_page(const u8 *zp, struct boot_info *info)
{
    u32 count = zp[0x1E8];
    info->cmdline = (const char *)(u64)(rd32(zp + 0x228) | (u64)rd32(zp + 0xC8) << 32);
    info->initrd_address = rd32(zp + 0x218) | (u64)rd32(zp + 0xC0) << 32;
    info->initrd_size = rd32(zp + 0x21C) | (u64)rd32(zp + 0xC4) << 32;
    info->rsdp = rd64(zp + 0x070);
    info->setup_version = rd16(zp + 0x206);
    info->loadflags = zp[0x211];
    info->type_of_loader = zp[0x210];
    if (count > 128)
        count = 128;
    for (u32 i = 0; i < count; i++) {
        const u8 *entry = zp + 0x2D0 + 20 * i;
        info->memory[i].address = rd64(entry);
        info->memory[i].size = rd64(entry + 8);
        info->memory[i].type = rd32(entry + 16);
    }
    info->memory_ranges = count;
}

/* struct hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h). */
static void read_start_info(const u8 *si, struct boot_info *info)
{
    u32 count = rd32(si + 48);
    const u8 *memmap = (const u8 *)rd64(si + 40);
    if (rd32(si) != 0x336EC578) {
        puts("guest: bad hvm_start_info magic\n");
        exit_with(0x7F);
    }
    info->cmdline = (const char *)rd64(si + 24);
    info->rsdp = rd64(si + 32);
    if (rd32(si + 12) >= 1) {
        const u8 *module = (const u8 *)rd64(si + 16);
        info->initrd_address = rd64(module);
        info->initrd_size = rd64(module + 8);
    }
    if (rd32(si + 4) < 1)
        count = 0;
    if (count > 128)
        count = 128;
    for (u32 i = 0; i < count; i++) {
        const u8 *entry = memmap + 24 * i;
        info->memory[i].address = rd64(entry);
        info->memory[i].size = rd64(entry + 8);
        info->memory[i].type = rd32(entry + 16);
    }
    info->memory_ranges = count;
}

void read_boot_info(int protocol, u64 address, struct boot_info *info)
{
    memset(info, 0, sizeof(*info));
    info->protocol = protocol;
    info->info_address = address;
    if (protocol == PROTOCOL_PVH)
        read_start_info((const u8 *)address, info);
    else
        read_zero_page((const u8 *)address, info);
    if (!info->cmdline)
        info->cmdline = "";
}

void boot_timer_signal(void)
{
    *(volatile u8 *)BOOT_TIMER_ADDRESS = BOOT_TIMER_MAGIC;
}

void exit_with(u8 code)
{
    outb(EXIT_PORT, code);
    for (;;)
        __asm__ volatile("cli; hlt");
}

void i8042_reset(void)
{
    int spins = 100000;
    while ((inb(I8042_COMMAND) & 0x02) && --spins)  /* input buffer full: wait, as Linux does */
        ;
    outb(I8042_COMMAND, I8042_RESET);
    for (;;)
        __asm__ volatile("cli; hlt");
}

static struct boot_info boot_info;

void guest_entry(int protocol, u64 info_address)
{
    serial_init();
    read_boot_info(protocol, info_address, &boot_info);
    guest_main(&boot_info);
    exit_with(0x7E);  /* guest_main returned: a bug in the guest */
}
