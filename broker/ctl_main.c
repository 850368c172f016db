#include <stdio.h>
int main(void)
{
    puts("quorumctl: not yet");
    return 0;
}
