/* The jail hand-off probe: its first action prints CLOCK_MONOTONIC in microseconds, so the
 * benchmark can measure "launcher started" -> "probe running inside the jail". CLOCK_MONOTONIC
 * is system-wide and unaffected by namespaces, so host and jail readings compare directly.
 * Then it prints its uid and pid as a sanity check of the isolation it ran under. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long started_us = (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    printf("%lld %u %d\n", started_us, (unsigned)getuid(), (int)getpid());
    return 0;
}
