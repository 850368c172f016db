/* placeholder.c - keeps qr_broker non-empty until its modules land. */
int qr_broker_placeholder(void);
int qr_broker_placeholder(void)
{
    return 0;
}
