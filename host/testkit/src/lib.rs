//! Real services for Warren's tests and benchmarks. The Redis backend is always tested
//! against real servers — a single `redis-server` ([`RedisServer`]) and a Redis Cluster of
//! three masters ([`RedisCluster`]) — started here on free ports and stopped with the test
//! process; a missing `redis-server` or `redis-cli` fails the test, it never skips it.

mod process;
mod redis_cluster;
mod redis_server;
mod watchdog;

pub use process::{Process, TEST_AUTH_KEY};
pub use redis_cluster::RedisCluster;
pub use redis_server::RedisServer;
