#include <stdio.h>
int main(void)
{
    puts("quorumd: not yet");
    return 0;
}
