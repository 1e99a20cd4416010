# frozen_string_literal: true

# Tests of the Ruby binding against the throwaway PostgreSQL of scripts/with-pg
# (PGHOST, PGPORT, PGDATABASE, PGUSER and FW_PG_* in the environment).
$LOAD_PATH.unshift File.expand_path("../lib", __dir__)
require "minitest/autorun"
require "json"
require "fraiseql_wire"

class FraiseqlWireTest < Minitest::Test
  FW = FraiseqlWire

  def client
    @client ||= FW::Client.new("")
  end

  def teardown
    @client&.close
  end

  # Client backends connected to the test database, counted through the library itself:
  # v_user has n = 1..1000, so the rows with n <= count(*) are that many.
  def backends
    pred = "(data->>'n')::int <= (SELECT count(*) FROM pg_stat_activity " \
           "WHERE backend_type = 'client backend' AND datname = current_database())"
    client.stream("v_user", where: pred) { |s| s.count }
  end

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  def test_version
    assert_match(/\A\d+\.\d+\.\d+/, FW.version)
  end

  def test_large_view_count_and_content
    rows = client.stream("v_user") { |s| s.map { |r| JSON.parse(r) } }
    assert_equal 1000, rows.size
    by_n = rows.to_h { |r| [r["n"], r] }
    assert_equal (1..1000).to_a, by_n.keys.sort
    [1, 500, 1000].each do |n|
      assert_equal "user#{n}@example.com", by_n[n]["email"]
      assert_equal(-n, by_n[n]["neg"])
      assert_equal "Zoë 東京 🎉 ñ € 𝄞", by_n[n]["unicode"]
    end
    assert_equal Encoding::UTF_8, rows.first["name"].encoding

    ids = client.stream("v_bench_10k") { |s| s.map { |r| JSON.parse(r)["id"] } }
    assert_equal (1..10_000).to_a, ids.sort
  end

  # The "id" of each row of the query, in the order streamed (the query is closed).
  def ids(q)
    q.stream { |s| s.map { |r| JSON.parse(r)["id"] } }
  ensure
    q.close
  end

  # Ids of the rows matching a hand-written SQL condition (the expected set).
  def hand(cond, source = "v_filter")
    ids(client.query(source).where(cond)).sort
  end

  def test_where_typed
    require "bigdecimal"
    %w[v_filter v_filter_json].each do |src|
      [
        [["/status", :eq, "active"], "data->>'status' = 'active'"],
        [["/address/city", "EQ", "Zürich"], "data->'address'->>'city' = 'Zürich'"],
        [["/score", :gt, 10], "(data->>'score')::numeric > 10"],
        [["/score", :le, 0.5], "(data->>'score')::numeric <= 0.5"],
        [["/score", :ge, BigDecimal("123456789012345678901234567890.123456789")],
         "(data->>'score')::numeric >= 123456789012345678901234567890.123456789"],
        [["/score", :lt, 123_456_789_012_345_678_901_234_567_890],
         "(data->>'score')::numeric < 123456789012345678901234567890"],
        [["/status", :in, %w[pending inactive]], "data->>'status' IN ('pending', 'inactive')"],
        [["/id", :not_in, [1, 2, 3]], "(data->>'id')::int NOT IN (1, 2, 3)"],
        [["/active", :eq, true], "(data->>'active')::boolean"],
        [["/email", :eq, nil], "data->>'email' IS NULL"],
        [["/email", :exists], "data::jsonb ? 'email'"],
        [["/email", :not_exists], "NOT data::jsonb ? 'email'"],
        [["/tags", :json_contains, ["poet"]], %(data::jsonb @> '{"tags": ["poet"]}')],
        [["/name", :starts_with, "50%"], "data->>'name' LIKE '50\\%%'"]
      ].each do |args, cond|
        want = hand(cond, src)
        refute_empty want, cond
        assert_equal want, ids(client.query(src).where(*args)).sort, "#{src} #{args.inspect}"
      end
    end
  end

  def test_order_by_path
    got = ids(client.query("v_filter").order_by_path("/name", :text, collation: "C", dir: :desc)
                    .order_by("(data->>'id')::int"))
    want = ids(client.query("v_filter").order_by("data->>'name'", collation: "C", desc: true)
                     .order_by("(data->>'id')::int"))
    assert_equal want, got
    assert_equal got.uniq, got
    got = ids(client.query("v_filter_json").order_by_path("/score", :numeric)
                    .order_by("(data->>'id')::int"))
    want = ids(client.query("v_filter_json").order_by("(data->>'score')::numeric")
                     .order_by("(data->>'id')::int"))
    assert_equal want, got
    assert_equal [3, 7], got[0, 2] # -3, then 0: numeric, not text, order
    assert_raises(FW::InvalidArgumentError) { client.query("v_filter").order_by_path("/score", :roman) }
    err = assert_raises(FW::InvalidArgumentError) do
      client.query("v_filter").order_by_path("/score", :numeric, collation: "C")
    end
    assert_equal "FW_E_INVALID_ARGUMENT", err.status
  end

  def test_where_params
    q = client.query("v_filter").where_params("data->>'status' = $1", ["inactive"])
              .where_params("data->>'email' IS NOT DISTINCT FROM $1 AND " \
                            "(data->>'score')::numeric <= $2", [nil, 0])
    want = hand("data->>'status' = 'inactive' AND data->>'email' IS NULL " \
                "AND (data->>'score')::numeric <= 0")
    assert_equal [7], want
    assert_equal want, ids(q).sort
    q = client.query("v_filter").where_params("(data->>'score')::numeric > $1", [10])
              .where_params("data->>'active' = $1 OR $2::text IS NULL", [false, "x"])
    assert_equal hand("(data->>'score')::numeric > 10 AND data->>'active' = 'false'"), ids(q).sort
  end

  def test_where_injection_stays_data
    evil = "O'Brien $1 '); DROP TABLE t_guard; --"
    assert_equal [9], ids(client.query("v_filter").where("/name", :eq, evil))
    assert_equal [9], ids(client.query("v_filter").where_params("data->>'name' = $1", [evil]))
    assert_equal [], ids(client.query("v_filter").where("/status", :eq, "x' OR '1'='1"))
    assert_equal [], ids(client.query("v_filter").where_params("data->>'status' = $1", ["x' OR '1'='1"]))
    # t_guard still exists
    assert_equal hand("true").size, ids(client.query("v_filter").where("EXISTS (SELECT 1 FROM t_guard)")).size
  end

  def test_where_errors
    err = assert_raises(FW::InvalidArgumentError) { client.query("v_filter").where("/name", :like, 5) }
    assert_equal "FW_E_INVALID_ARGUMENT", err.status
    assert_includes err.message, "LIKE"
    assert_includes err.message, "number"
    err = assert_raises(FW::InvalidArgumentError) { client.query("v_filter").where("/name", :equals, "x") }
    assert_includes err.message, ":equals is not an operator"
    assert_raises(FW::InvalidArgumentError) { client.query("v_filter").where("/name", :eq) }
    assert_raises(FW::InvalidArgumentError) { client.query("v_filter").where("/score", :gt, Float::NAN) }
    err = assert_raises(FW::InvalidArgumentError) do
      client.query("v_filter").where_params("data->>'a' = $2", ["x"])
    end
    assert_equal "FW_E_INVALID_ARGUMENT", err.status
  end

  def test_enumerator_and_builder
    q = client.query("v_user").where("(data->>'n')::int > 10")
              .order_by("(data->>'n')::int", desc: true).limit(3).offset(1)
    q.stream do |s|
      e = s.each
      assert_kind_of Enumerator, e
      assert_equal [999, 998, 997], e.map { |r| JSON.parse(r)["n"] }
    end
    # a query runs any number of times; lazy enumerators stop early
    q.stream { |s| assert_equal 2, s.each.lazy.first(2).size }
    q.close
    err = assert_raises(FW::InvalidArgumentError) { client.query("v_user; drop table t_guard") }
    assert_equal "FW_E_INVALID_ARGUMENT", err.status
  end

  def test_parallel
    # A table split by block ranges: every row once.
    ids = client.stream("users", parallel: 3) { |s| s.map { |r| JSON.parse(r)["id"] } }
    assert_equal (1..1000).to_a, ids.sort
    # A view with a partition expression, merged in order with LIMIT/OFFSET.
    q = client.query("v_user").parallel(2, partition_by: "(data->>'id')::int")
              .order_by("(data->>'n')::int", desc: true).limit(3).offset(1)
    q.stream { |s| assert_equal [999, 998, 997], s.map { |r| JSON.parse(r)["n"] } }
    q.close
    err = assert_raises(FW::InvalidArgumentError) { client.stream("v_user", parallel: 2) { |s| s.count } }
    assert_match(/fw_query_partition_by/, err.message)
  end

  def test_missing_view_sqlstate
    err = assert_raises(FW::ServerError) { client.query("v_does_not_exist").stream }
    assert_kind_of FW::Error, err
    assert_equal "42P01", err.sqlstate
    assert_equal(-6, err.code)
    assert_match(/v_does_not_exist/, err.message)
  end

  def test_rows_as_text_and_parsed
    q = client.query("v_user").order_by("(data->>'n')::int")
    texts = q.stream(&:to_a)
    parsed = q.stream(parse: true, &:to_a)
    assert_equal 1000, texts.size
    assert(texts.all? { |r| r.is_a?(String) && r.encoding == Encoding::UTF_8 && r.valid_encoding? })
    assert_equal(texts.map { |r| JSON.parse(r) }, parsed)
    assert_equal((1..1000).to_a, parsed.map { |r| r["n"] })
    q.close
    q = client.query("v_null")
    assert_equal [{ "i" => 1 }, nil, { "i" => 3 }], q.stream(parse: true, &:to_a)
    assert_equal ['{"i": 1}', "null", '{"i": 3}'], q.stream(&:to_a)
    q.close
  end

  def test_batches
    q = client.query("v_user")
    sizes = q.stream(batch_size: 64) do |s|
      refute_nil s.next_row
      s.each_batch.map(&:size)
    end
    assert_equal 999, sizes.sum
    assert(sizes.all? { |n| n.between?(1, 64) }, sizes.inspect)
    q.close
    q = client.query("v_user").limit(10)
    assert_equal [1] * 10, q.stream(max_bytes: 1) { |s| s.each_batch.map(&:size) }
    q.close
  end

  # A block with a NUL inside row 1, which the library never hands out (tests/stream_block_nul.rs):
  # the split finds 4 pieces for 3 rows, so the rows are cut by the offsets instead.
  def test_block_split_falls_back_to_offsets
    data = "{\"a\":1}\0\"x\0y\"\0[]\0".b
    buf = FFI::MemoryPointer.new(:char, data.bytesize)
    buf.put_bytes(0, data)
    offs = FFI::MemoryPointer.new(:size_t, 4)
    offs.write_array_of_ulong([0, 8, 14, 17]) # size_t is unsigned long on Linux
    block = FW::Lib::Block.new
    block[:data] = buf
    block[:len] = data.bytesize
    block[:offsets] = offs
    block[:n] = 3
    s = FW::Stream.allocate
    s.instance_variable_set(:@block, block)
    s.instance_variable_set(:@parse, false)
    assert_equal ['{"a":1}', "\"x\0y\"", "[]"], s.send(:rows_of_block)
  end

  # each takes rows from each block's text with each_line (the NUL of every row its
  # separator): the same rows, in order, as each_batch and next_row; and after next_row.
  def test_each_matches_batches
    q = client.query("v_user").order_by("(data->>'n')::int")
    by_each = q.stream(batch_size: 50, &:to_a)
    by_batch = q.stream(batch_size: 50) { |s| s.each_batch.flat_map(&:itself) }
    mixed = q.stream(batch_size: 50) { |s| [s.next_row, s.next_row] + s.to_a }
    q.close
    assert_equal 1000, by_each.size
    assert_equal by_batch, by_each
    assert_equal by_batch, mixed
    assert(by_each.none? { |r| r.include?("\0") || r.empty? })
    assert(by_each.all? { |r| r.encoding == Encoding::UTF_8 && r.valid_encoding? })
  end

  def test_error_fields
    err = assert_raises(FW::ServerError) { client.query("v_user").where("(data->>'n')::int = 'x'").stream }
    assert_equal ["FW_E_SERVER", -6, "22P02"], [err.status, err.code, err.sqlstate]
    assert_match(/invalid input syntax/, err.message)
    refute_nil err.position
    %i[detail hint].each { |f| assert_respond_to err, f }
  end

  def test_error_after_rows
    got = []
    client.stream("v_div_zero_after") do |s|
      err = assert_raises(FW::ServerError) { s.each { |r| got << JSON.parse(r)["i"] } }
      assert_equal "22012", err.sqlstate
      assert_equal :failed, s.state
    end
    assert_equal (1..50).to_a, got
  end

  def test_schema_error
    assert_raises(FW::SchemaError) { client.query("v_not_json").stream }
  end

  def test_describe_wait
    # v_slow_not_json describes itself after 0.5 s: past the default 0.02 s the wrong shape
    # is raised by the iteration; waiting longer (2 s, or without limit), by `stream` itself
    client.query("v_slow_not_json").stream do |st|
      assert_raises(FW::SchemaError) { st.to_a }
    end
    [2, nil].each do |wait|
      assert_raises(FW::SchemaError, "wait #{wait.inspect}") do
        client.query("v_slow_not_json").describe_wait(wait).stream
      end
    end
    # wait 0: `stream` does not wait, so the missing relation is raised by the iteration,
    # unless the answer was already there when `stream` looked once
    err = assert_raises(FW::ServerError) do
      client.query("v_does_not_exist").describe_wait(0).stream do |st|
        assert_empty st.to_a
      end
    end
    assert_equal "42P01", err.sqlstate
    # the client goes on
    assert_equal 5, client.query("v_user").limit(5).describe_wait(3600).stream(&:count)
    [3600.001, -1, -0.0004, Float::NAN, Float::INFINITY, "1"].each do |bad|
      assert_raises(FW::InvalidArgumentError, bad.inspect) { client.query("v_user").describe_wait(bad) }
    end
  end

  def test_read_ahead_and_coalesce
    [0, 0.1].each do |coalesce|
      q = client.query("v_user").order_by("(data->>'n')::int").read_ahead(1)
                .read_coalesce(coalesce).chunk_size(1)
      ns = q.stream { |s| s.map { |r| JSON.parse(r)["n"] } }
      assert_equal (1..1000).to_a, ns, "coalesce #{coalesce}"
    end
    assert_raises(FW::InvalidArgumentError) { client.query("v_user").read_ahead(0) }
    assert_raises(FW::InvalidArgumentError) { client.query("v_user").read_ahead(-1) }
    assert_raises(FW::InvalidArgumentError) { client.query("v_user").read_coalesce(0.100001) }
    assert_raises(FW::InvalidArgumentError) { client.query("v_user").read_coalesce(-0.000001) }
    assert_raises(FW::InvalidArgumentError) { client.query("v_user").read_coalesce(-4e-7) }
  end

  def test_auth
    base = "host=127.0.0.1 port=#{ENV.fetch('FW_PG_PORT')} dbname=fraiseql_test user=fw_scram"
    err = assert_raises(FW::AuthError) { FW::Client.new("#{base} password=wrong") }
    assert_kind_of FW::ConnectError, err
    assert_equal "28P01", err.sqlstate
    FW::Client.open("#{base} password=scram-secret") do |c|
      assert_equal 5, c.stream("v_user", limit: 5, &:count)
    end
  end

  def test_cancel_mid_stream
    s = client.query("v_sleep30").stream
    t0 = monotonic
    canceller = Thread.new { sleep 0.3; s.cancel }
    assert_raises(FW::CancelledError) { s.each { nil } }
    canceller.join
    assert_operator monotonic - t0, :<, 5
    assert_equal :cancelled, s.state
    s.close

    client.stream("v_slow") do |st|
      assert_equal 1, JSON.parse(st.next_row)["i"]
      st.cancel
      t0 = monotonic
      assert_raises(FW::CancelledError) { st.next_row }
      assert_operator monotonic - t0, :<, 1
    end
    assert_equal 2, client.stream("v_user", limit: 2, &:count)
  end

  # Closing wakes the thread waiting in the library, then frees the stream.
  def test_close_from_another_thread
    s = client.query("v_sleep30").stream
    closer = Thread.new { sleep 0.2; s.close }
    t0 = monotonic
    assert_raises(FW::CancelledError) { s.next_row }
    closer.join
    assert_operator monotonic - t0, :<, 5
    assert s.closed?
    assert_raises(FW::StateError) { s.next_row }
  end

  def test_pause_resume
    q = client.query("v_user").chunk_size(16)
    q.stream(batch_size: 8) do |s|
      first = s.next_row
      refute_nil first
      s.pause("test")
      s.pause # idempotent
      assert_equal :paused, s.state
      resumer = Thread.new { sleep 0.3; s.resume }
      t0 = monotonic
      rest = s.to_a # buffered rows, then waits for the resume
      resumer.join
      assert_operator monotonic - t0, :>=, 0.2
      st = s.stats
      assert_equal 1000, rest.size + 1
      assert_equal 1, st.pause_count
      assert_operator st.paused_ms_total, :>, 100
      assert_equal :completed, st.state
      assert_raises(FW::StateError) { s.pause }
    end
    q.close
  end

  def test_stats
    client.stream("v_user") do |s|
      assert_equal 0, s.stats.total_rows_yielded
      assert_equal 1000, s.count
      st = s.stats
      assert_equal :completed, st.state
      assert_equal 1000, st.total_rows_received
      assert_equal 1000, st.total_rows_yielded
      assert_equal 0, st.total_rows_filtered
      assert_operator st.total_bytes_received, :>, 100_000
      assert_operator st.elapsed_us, :>, 0
      assert_equal 0, st.items_buffered
    end
  end

  # Blocking calls release the GVL: a Ruby thread keeps counting while the main thread
  # waits on v_slow (~2 s for 20 rows).
  def test_gvl_released_while_waiting
    count = 0
    stop = false
    ticker = Thread.new do
      until stop
        count += 1
        Thread.pass
      end
    end
    n = client.stream("v_slow", &:count)
    stop = true
    ticker.join
    assert_equal 20, n
    assert_operator count, :>, 10_000
  end

  def test_metrics_dump
    client.stream("v_user", limit: 1, &:to_a)
    text = FW.metrics_dump
    assert_includes text, "fraiseql_queries_total"
    assert_includes text, 'entity="v_user"'
  end

  def test_closed_handles
    c = FW::Client.new("")
    s = c.query("v_user").stream
    c.close
    c.close
    assert_equal 1000, s.count # streams outlive their client
    s.close
    s.close
    assert_raises(FW::StateError) { s.stats }
    assert_raises(FW::StateError) { c.query("v_user") }
  end

  def test_gc_frees_everything
    before = backends
    GC.start
    base = FW.live_handles
    # On a thread of its own, so that no reference stays on the main thread's stack
    # (Ruby's GC scans stacks conservatively).
    Thread.new do
      60.times do
        c = FW::Client.new("")
        q = c.query("v_bench_10k")
        s = q.stream
        s.next_row
        # never closed: the finalizers free them
      end
    end.join
    deadline = monotonic + 10
    now = nil
    loop do
      GC.start(full_mark: true, immediate_sweep: true)
      now = backends
      break if (FW.live_handles == base && now <= before + 2) || monotonic > deadline

      sleep 0.1
    end
    assert_equal base, FW.live_handles
    assert_operator now, :<=, before + 2
  end
end
