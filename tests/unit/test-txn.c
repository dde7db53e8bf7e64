/*
 * test-txn.c - the start's decision for each pool/open transaction ID
 * pair, and device name validation.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "deviceset.h"
#include "tap.h"

static void name_is(const char *name, int want)
{
	is_int(ds_check_name(name), want, "name '%.40s%s' -> %d", name, strlen(name) > 40 ? "..." : "", want);
}

int main(void)
{
	char n128[129], n129[130];

	is_int(ds_txn_decide(0, 0), DS_TXN_CLEAN, "0/0: clean");
	is_int(ds_txn_decide(5, 5), DS_TXN_CLEAN, "5/5: clean");
	is_int(ds_txn_decide(5, 6), DS_TXN_ROLLBACK, "pool 5, open 6: roll back");
	is_int(ds_txn_decide(0, 1), DS_TXN_ROLLBACK, "pool 0, open 1: roll back");
	/* Only the one gap the protocol leaves is rolled back: a reset or
	 * restored pool (open far ahead) must not lose devices. */
	is_int(ds_txn_decide(5, 9), DS_TXN_MISMATCH, "pool 5, open 9: not rolled back, the start stops");
	is_int(ds_txn_decide(0, 7), DS_TXN_MISMATCH, "pool 0 (reset), open 7: the start stops");
	is_int(ds_txn_decide(6, 5), DS_TXN_CLEAN, "pool 6, open 5: closed (adds since do not write the record)");
	is_int(ds_txn_decide(UINT64_MAX, UINT64_MAX), DS_TXN_CLEAN, "max/max: clean");
	is_int(ds_txn_decide(UINT64_MAX - 1, UINT64_MAX), DS_TXN_ROLLBACK, "max-1/max: roll back");
	is_int(ds_txn_decide(UINT64_MAX, 0), DS_TXN_CLEAN, "max/0: closed");

	memset(n128, 'a', 128);
	n128[128] = '\0';
	memset(n129, 'a', 129);
	n129[129] = '\0';
	name_is("web", 0);
	name_is("Web-1.2_x", 0);
	name_is("0", 0);
	name_is(n128, 0);
	name_is(n129, -ENAMETOOLONG);
	name_is("", -EINVAL);
	name_is(".hidden", -EINVAL);
	name_is("-x", -EINVAL);
	name_is("_x", -EINVAL);
	name_is("a/b", -EINVAL);
	name_is("a b", -EINVAL);
	name_is("..", -EINVAL);
	name_is("ctl", -EINVAL);
	name_is("info", -EINVAL);
	name_is("rootfs", -EINVAL);
	name_is("deviceset-metadata", -EINVAL);
	name_is("transaction-metadata", -EINVAL);
	name_is("caf\xc3\xa9", -EINVAL);
	name_is("tab\t", -EINVAL);
	name_is("base", 0); /* valid; taken by the base device: EEXIST at mkdir */
	return tap_done();
}
