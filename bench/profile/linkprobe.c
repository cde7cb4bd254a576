/* linkprobe.c: a process that does nothing, for bench/profile/memory: linked with one
 * more library (no call into it), its memory over the bare probe's is what that library
 * costs every process that links it without using it. Prints "ready", then waits. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    printf("ready\n");
    fflush(stdout);
    pause();
    return 0;
}
