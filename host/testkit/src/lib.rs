//! Real services for Warren's tests and benchmarks. The Redis backend is always tested
//! against a real `redis-server`, started here on a free port and stopped with the test
//! process; a missing `redis-server` fails the test, it never skips it.

mod redis_server;

pub use redis_server::RedisServer;
