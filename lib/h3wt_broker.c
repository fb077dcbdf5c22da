/*
 * h3wt_broker: the calls every broker kind shares (see h3wt_broker.h).
 */
#include "h3wt_broker.h"

void h3wt_broker_del(h3wt_broker *broker) {
  if (broker) {
    broker->kind->del(broker);
  }
}
