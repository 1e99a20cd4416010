/* The tests of the suite (defined in test_*.c, listed in main.c). */
#ifndef FW_TESTS_H
#define FW_TESTS_H

/* test_basics.c */
void test_status_str(void);
void test_version(void);
void test_error_accessors_null(void);
void test_null_arguments(void);
void test_invalid_utf8(void);
void test_free_null(void);
void test_last_error_lifetime(void);
/* test_client.c */
void test_client_socket_trust(void);
void test_client_env_defaults(void);
void test_client_scram(void);
void test_client_md5(void);
void test_client_cleartext(void);
void test_client_uri(void);
void test_client_wrong_password(void);
void test_client_bad_conninfo(void);
void test_client_connect_refused(void);
void test_client_free_keeps_query_alive(void);
/* test_query.c */
void test_query_sources(void);
void test_query_setters_validation(void);
void test_query_shape(void);
void test_query_injection(void);
void test_query_missing_view(void);
void test_query_schema_errors(void);
void test_query_server_error_fields(void);
/* test_params.c */
void test_where_params(void);
void test_where_typed(void);
void test_order_by_path(void);
/* test_stream.c */
void test_stream_next_content(void);
void test_stream_json_verbatim(void);
void test_stream_empty_and_null(void);
void test_stream_big_rows(void);
void test_stream_memory_limit(void);
void test_stream_chunking(void);
void test_stream_try_next(void);
void test_stream_next_batch(void);
void test_stream_next_block(void);
void test_block_transcode(void);
void test_stream_for_each(void);
void test_stream_timeouts(void);
void test_stream_fd_poll(void);
/* test_parallel.c */
void test_parallel_arguments(void);
void test_parallel_table_and_view(void);
void test_parallel_ordered_merge(void);
void test_parallel_consuming_calls(void);
void test_parallel_cancel_and_error(void);
/* test_control.c */
void test_pause_resume(void);
void test_pause_in_for_each(void);
void test_pause_timeout(void);
void test_stats_struct_size(void);
void test_filter(void);
void test_filter_json(void);
void test_cancel_from_thread(void);
void test_free_running_stream(void);
void test_cancel_buffered(void);
void test_error_after_rows(void);
void test_log_callback(void);
/* test_process.c */
void test_threads_share_client(void);
void test_filter_shared_by_threads(void);
/* test_metrics.c */
void test_metrics_dump(void);
void test_metrics_http(void);
void test_fork_without_hooks(void);
void test_fork_with_hooks(void);
void test_shutdown(void);

#endif
