#include <stdio.h>
int main(void)
{
    puts("quorum-agent: not yet");
    return 0;
}
