# frozen_string_literal: true

# Ruby binding for fraiseql-wire (the `ffi` gem).
#
#   require "fraiseql_wire"
#
#   client = FraiseqlWire::Client.new("")   # libpq conninfo; PG* env as defaults
#   client.query("v_user").where("(data->>'active')::boolean").limit(10).stream do |s|
#     s.each { |row| puts row }             # row: String (JSON text, UTF-8)
#   end
#
# The shared library is found through, in order: $FW_LIB (a file), $FW_LIB_DIR (a
# directory), the repository's build tree (target/release), then the system's library
# search path. Calls that can wait (connect, execute, fetching rows) release the GVL, so
# other Ruby threads run while a stream waits.
require "ffi"
require "json"

module FraiseqlWire
  # Raw C functions (include/fraiseql_wire.h).
  module Lib
    extend FFI::Library

    LIBNAME = "libfraiseql_wire.so"
    MAJOR = 0
    SONAME = "#{LIBNAME}.#{MAJOR}"

    # [where, path] in lookup order (the same as the Python and Node bindings): $FW_LIB (a
    # file), $FW_LIB_DIR (a directory), the system's dynamic loader (LD_LIBRARY_PATH, the
    # ld.so cache, the default directories), then pkg-config's libdir of fraiseql-wire.pc.
    def self.candidates
      return [[:FW_LIB, ENV["FW_LIB"]]] if ENV["FW_LIB"] && !ENV["FW_LIB"].empty?
      return [[:FW_LIB_DIR, File.join(ENV["FW_LIB_DIR"], LIBNAME)]] if ENV["FW_LIB_DIR"] && !ENV["FW_LIB_DIR"].empty?

      [[:system_loader, SONAME], [:pkg_config, nil]]
    end

    def self.pkg_config_libdir
      out = IO.popen(%w[pkg-config --variable=libdir fraiseql-wire], err: File::NULL, &:read).strip
      $?.success? && !out.empty? ? out : nil
    rescue SystemCallError
      nil
    end

    def self.load_library
      errors = []
      candidates.each do |where, path|
        if where == :pkg_config
          libdir = pkg_config_libdir
          unless libdir
            errors << "pkg-config: no fraiseql-wire.pc found"
            next
          end
          path = File.join(libdir, SONAME)
        end
        begin
          ffi_lib path
          return path
        rescue LoadError => e
          errors << "#{where}: #{e.message}"
        end
      end
      raise LoadError, "cannot load #{SONAME} (install it with `make install`, or set FW_LIB to its path): " \
                       "#{errors.join("; ")}"
    end

    PATH = load_library

    # fw_block: the rows back to back, each followed by a NUL; n + 1 offsets.
    class Block < FFI::Struct
      layout :data, :pointer, :len, :size_t, :offsets, :pointer, :n, :size_t
    end

    STATS_FIELDS = %i[
      items_buffered bytes_buffered estimated_memory total_rows_received
      total_rows_yielded total_rows_filtered total_bytes_received current_chunk_size
      pause_count paused_ms_total time_to_first_row_us elapsed_us memory_limit
      peak_memory memory_warnings chunks_received pause_timeouts
    ].freeze

    class Stats < FFI::Struct
      layout(*([:struct_size, :size_t, :state, :int] + STATS_FIELDS.flat_map { |f| [f, :uint64] }))
    end

    attach_function :fw_client_new, %i[string pointer], :int, blocking: true
    attach_function :fw_client_free, [:pointer], :void
    attach_function :fw_last_error, [], :pointer
    attach_function :fw_error_code, [:pointer], :int
    attach_function :fw_error_message, [:pointer], :pointer
    attach_function :fw_error_sqlstate, [:pointer], :pointer
    attach_function :fw_error_detail, [:pointer], :pointer
    attach_function :fw_error_hint, [:pointer], :pointer
    attach_function :fw_error_position, [:pointer], :pointer
    attach_function :fw_query_new, %i[pointer string pointer], :int
    attach_function :fw_query_where_sql, %i[pointer string], :int
    attach_function :fw_query_order_by, %i[pointer string string int], :int
    attach_function :fw_query_limit, %i[pointer uint64], :int
    attach_function :fw_query_offset, %i[pointer uint64], :int
    attach_function :fw_query_chunk_size, %i[pointer size_t], :int
    attach_function :fw_query_adaptive_chunking, %i[pointer bool size_t size_t], :int
    attach_function :fw_query_max_memory, %i[pointer size_t double double], :int
    attach_function :fw_query_read_ahead, %i[pointer size_t], :int
    attach_function :fw_query_parallel, %i[pointer uint], :int
    attach_function :fw_query_partition_by, %i[pointer string], :int
    attach_function :fw_query_read_coalesce, %i[pointer uint32], :int
    attach_function :fw_query_describe_wait, %i[pointer int64], :int
    attach_function :fw_query_where_params, %i[pointer string size_t pointer], :int
    attach_function :fw_query_where, %i[pointer string int string], :int
    attach_function :fw_query_order_by_path, %i[pointer string int string int], :int
    attach_function :fw_query_execute, %i[pointer pointer], :int, blocking: true
    attach_function :fw_query_free, [:pointer], :void
    attach_function :fw_version, [], :string
    attach_function :fw_shutdown, [:uint64], :int, blocking: true
    attach_function :fw_string_free, [:pointer], :void
    attach_function :fw_status_str, [:int], :string
    attach_function :fw_stream_next_block, %i[pointer pointer size_t size_t int64], :int, blocking: true
    attach_function :fw_stream_pause, [:pointer], :int
    attach_function :fw_stream_pause_with_reason, %i[pointer string], :int
    attach_function :fw_stream_resume, [:pointer], :int
    attach_function :fw_stream_set_pause_timeout, %i[pointer uint64], :int
    attach_function :fw_stream_state_snapshot, [:pointer], :int
    attach_function :fw_stream_stats, %i[pointer pointer], :int
    attach_function :fw_stream_cancel, [:pointer], :int
    attach_function :fw_stream_error, [:pointer], :pointer
    attach_function :fw_stream_free, [:pointer], :void
    attach_function :fw_metrics_dump, %i[pointer pointer], :int
  end

  OK = 0
  DONE = 1
  WOULD_BLOCK = 2
  TIMEOUT = 3
  PAUSED = 4

  STATES = { -1 => :invalid, 0 => :running, 1 => :paused, 2 => :completed,
             3 => :failed, 4 => :cancelled }.freeze

  # A failed library call. `status` is the status name ("FW_E_SERVER"), `code` its number
  # (-6), `message` the library's or the server's message; server errors also carry
  # `sqlstate`, `detail`, `hint` and `position` (nil when absent). The same fields as in the
  # Python, Node and Go bindings.
  class Error < StandardError
    attr_reader :code, :status, :sqlstate, :detail, :hint, :position

    def initialize(message = nil, code: nil, status: nil, sqlstate: nil, detail: nil, hint: nil,
                   position: nil)
      @code = code
      @status = status
      @sqlstate = sqlstate
      @detail = detail
      @hint = hint
      @position = position
      super(message)
    end
  end

  class InvalidArgumentError < Error; end   # FW_E_INVALID_ARGUMENT
  class NullPointerError < InvalidArgumentError; end # FW_E_NULL
  class ConnectError < Error; end           # FW_E_CONNECT
  class AuthError < ConnectError; end       # FW_E_AUTH
  class TLSError < ConnectError; end        # FW_E_TLS
  class ServerError < Error; end            # FW_E_SERVER (see #sqlstate)
  class ProtocolError < Error; end          # FW_E_PROTOCOL
  class SchemaError < Error; end            # FW_E_SCHEMA
  class MemoryLimitError < Error; end       # FW_E_MEMORY_LIMIT
  class CancelledError < Error; end         # FW_E_CANCELLED
  class ConnectionLostError < Error; end    # FW_E_IO
  class StateError < Error; end             # FW_E_STATE
  class PanicError < Error; end             # FW_E_PANIC
  class ShutdownError < Error; end          # FW_E_SHUTDOWN

  ERRORS = {
    -1 => InvalidArgumentError, -2 => NullPointerError, -3 => ConnectError, -4 => AuthError,
    -5 => TLSError, -6 => ServerError, -7 => ProtocolError, -8 => SchemaError,
    -9 => MemoryLimitError, -10 => CancelledError, -11 => ConnectionLostError,
    -12 => StateError, -13 => PanicError, -14 => ShutdownError
  }.freeze

  @live = Hash.new(0)

  class << self
    # Native handles alive now, by kind ({client: n, query: n, stream: n}).
    def live_handles
      { client: @live[:client], query: @live[:query], stream: @live[:stream] }
    end

    # A non-negative finite number of seconds as whole microseconds (rounded), else
    # InvalidArgumentError.
    def seconds_to_us(seconds, what) # :nodoc:
      unless seconds.is_a?(Numeric) && seconds.finite? && seconds >= 0
        raise InvalidArgumentError.new("#{what}: #{seconds.inspect} is not a number of seconds >= 0",
                                       code: -1, status: "FW_E_INVALID_ARGUMENT")
      end

      (seconds * 1_000_000).round
    end

    # `n` as an integer in 0..max, else InvalidArgumentError (FFI would wrap a negative).
    def unsigned(n, what, max) # :nodoc:
      return n if n.is_a?(Integer) && n >= 0 && n <= max

      raise InvalidArgumentError.new("#{what}: #{n.inspect} is out of range",
                                     code: -1, status: "FW_E_INVALID_ARGUMENT")
    end

    def count_handle(kind, delta) # :nodoc:
      @live[kind] += delta
    end

    def version
      Lib.fw_version
    end

    # Cancel every live stream and stop the library's runtime (irreversible).
    def shutdown(timeout_ms = 5000)
      check(Lib.fw_shutdown(timeout_ms))
    end

    # The library's metrics in the Prometheus text format.
    def metrics_dump
      out = FFI::MemoryPointer.new(:pointer)
      len = FFI::MemoryPointer.new(:size_t)
      check(Lib.fw_metrics_dump(out, len))
      ptr = out.read_pointer
      return +"" if ptr.null?

      begin
        ptr.read_bytes(len.read(:size_t)).force_encoding(Encoding::UTF_8)
      ensure
        Lib.fw_string_free(ptr)
      end
    end

    def check(code, err = nil) # :nodoc:
      raise error_for(code, err) if code.negative?

      code
    end

    # An exception for a failed call, from `err` (a stream's error) or the calling
    # thread's last error (blocking calls run on this thread, so it is ours).
    def error_for(code, err = nil) # :nodoc:
      err = Lib.fw_last_error if err.nil? || err.null? || Lib.fw_error_code(err) != code
      klass = ERRORS.fetch(code, Error)
      name = Lib.fw_status_str(code)
      return klass.new(name, code: code, status: name) if err.null? || Lib.fw_error_code(err) != code

      message = str(Lib.fw_error_message(err)) || name
      klass.new(message, code: code, status: name,
                sqlstate: str(Lib.fw_error_sqlstate(err)), detail: str(Lib.fw_error_detail(err)),
                hint: str(Lib.fw_error_hint(err)), position: str(Lib.fw_error_position(err)))
    end

    def str(ptr) # :nodoc:
      ptr.null? ? nil : ptr.read_string.force_encoding(Encoding::UTF_8)
    end
  end

  # Owning pointers: the finalizer frees a handle the program dropped without #close.
  class ClientPtr < FFI::AutoPointer
    def self.release(ptr)
      Lib.fw_client_free(ptr)
      FraiseqlWire.count_handle(:client, -1)
    end
  end

  class QueryPtr < FFI::AutoPointer
    def self.release(ptr)
      Lib.fw_query_free(ptr)
      FraiseqlWire.count_handle(:query, -1)
    end
  end

  class StreamPtr < FFI::AutoPointer
    def self.release(ptr)
      Lib.fw_stream_free(ptr)
      FraiseqlWire.count_handle(:stream, -1)
    end
  end

  # A native pointer freed only once no call is using it: closing from one thread while
  # another waits in the library is safe (`wake` is called first to make that call return).
  class Handle # :nodoc:
    def initialize(autoptr, kind, wake: nil)
      @ptr = autoptr
      @kind = kind
      @wake = wake
      @mutex = Mutex.new
      @idle = ConditionVariable.new
      @busy = 0
    end

    def use
      ptr = @mutex.synchronize do
        raise StateError.new("the #{@kind} is closed", code: -12, status: "FW_E_STATE") unless @ptr

        @busy += 1
        @ptr
      end
      begin
        yield ptr
      ensure
        @mutex.synchronize do
          @busy -= 1
          @idle.broadcast if @busy.zero?
        end
      end
    end

    # FraiseqlWire.check(fn(ptr, *args)) with the pointer held.
    def call(fn, *args)
      use { |ptr| FraiseqlWire.check(Lib.send(fn, ptr, *args)) }
    end

    def closed?
      @ptr.nil?
    end

    def close
      ptr = @mutex.synchronize do
        ptr = @ptr
        @ptr = nil
        if ptr
          Lib.send(@wake, ptr) if @wake && @busy.positive?
          @idle.wait(@mutex) while @busy.positive?
        end
        ptr
      end
      ptr&.free
      nil
    end
  end

  # A thread-safe client: connection settings plus a connection pool.
  class Client
    # `conninfo` is a libpq connection string (URI or key=value); the PG* environment
    # variables fill in the rest. Connects once (raises ConnectError/AuthError on failure).
    # With a block, yields the client and closes it afterwards.
    def self.open(conninfo = "")
      client = new(conninfo)
      return client unless block_given?

      begin
        yield client
      ensure
        client.close
      end
    end

    def initialize(conninfo = "")
      out = FFI::MemoryPointer.new(:pointer)
      FraiseqlWire.check(Lib.fw_client_new(conninfo, out))
      FraiseqlWire.count_handle(:client, 1)
      @h = Handle.new(ClientPtr.new(out.read_pointer), "client")
    end

    # A query over a view or table ("v_user" or "schema.name").
    def query(source)
      Query.new(self, source)
    end

    # Shortcut: query(source) with an optional where/limit, parallel parts (`parallel: k`,
    # with `partition_by:` for a view; see Query#parallel), then #stream.
    def stream(source, where: nil, limit: nil, parallel: nil, partition_by: nil, &block)
      q = query(source)
      q.where(where) if where
      q.limit(limit) if limit
      q.parallel(parallel, partition_by: partition_by) if parallel
      begin
        q.stream(&block)
      ensure
        q.close
      end
    end

    def handle # :nodoc:
      @h
    end

    # Free the client and close its idle connections (open streams keep working).
    def close
      @h.close
    end

    def closed?
      @h.closed?
    end
  end

  # A query builder; setters return the query so calls chain. Streams any number of times.
  # Operators of Query#where (the fw_op values of the C header).
  OPS = {
    eq: 0, ne: 1, lt: 2, le: 3, gt: 4, ge: 5, in: 6, not_in: 7, like: 8, ilike: 9,
    starts_with: 10, ends_with: 11, contains_text: 12, icontains_text: 13, exists: 14,
    not_exists: 15, json_contains: 16, array_overlaps: 17, array_length_eq: 18,
    array_length_gt: 19, array_length_lt: 20, matches: 21
  }.freeze
  ORDER_KINDS = { text: 0, numeric: 1 }.freeze
  UNSET = Object.new.freeze # :nodoc:

  class << self
    # A Ruby value as JSON text (the json library's encoding; BigDecimal as its exact number).
    def to_json(value) # :nodoc:
      if big_decimal?(value)
        unless value.finite?
          raise InvalidArgumentError.new("where: #{value} cannot be sent as JSON: not a finite number",
                                         code: -1, status: "FW_E_INVALID_ARGUMENT")
        end
        return value.to_s("F")
      end
      case value
      when Array then "[#{value.map { |v| to_json(v) }.join(",")}]"
      when Hash then "{#{value.map { |k, v| "#{JSON.generate(k.to_s)}:#{to_json(v)}" }.join(",")}}"
      when String, Integer, Float, true, false, nil then JSON.generate(value)
      else
        raise InvalidArgumentError.new("where: a #{value.class} (#{value.inspect}) cannot be sent as JSON",
                                       code: -1, status: "FW_E_INVALID_ARGUMENT")
      end
    rescue JSON::GeneratorError => e
      raise InvalidArgumentError.new("where: #{value.inspect} cannot be sent as JSON: #{e.message}",
                                     code: -1, status: "FW_E_INVALID_ARGUMENT")
    end

    # BigDecimal without requiring it (it is a gem of its own in newer Rubies).
    def big_decimal?(value) # :nodoc:
      defined?(::BigDecimal) && value.is_a?(::BigDecimal)
    end

    # A where_params value as the text sent in Bind.
    def param_text(value) # :nodoc:
      return value.finite? ? value.to_s("F") : value.to_s if big_decimal?(value)

      case value
      when String then value
      when true, false, Integer then value.to_s
      when Float
        return value.to_s if value.finite?

        value.nan? ? "NaN" : (value.positive? ? "Infinity" : "-Infinity")
      when Array, Hash then to_json(value)
      else
        raise InvalidArgumentError.new("where_params: cannot send a #{value.class} " \
                                       "(#{value.inspect}) as a parameter",
                                       code: -1, status: "FW_E_INVALID_ARGUMENT")
      end
    end
  end

  class Query
    def initialize(client, source)
      @client = client
      out = FFI::MemoryPointer.new(:pointer)
      client.handle.call(:fw_query_new, source, out)
      FraiseqlWire.count_handle(:query, 1)
      @h = Handle.new(QueryPtr.new(out.read_pointer), "query")
    end

    # Add a predicate (parenthesised, ANDed with the others).
    #
    # `where(sql)`: a trusted SQL predicate, the application's own text, never built from
    # user input (fw_query_where_sql).
    #
    # `where(json_pointer, op, value)`: a typed predicate evaluated by the server
    # (fw_query_where): the value at the RFC 6901 pointer compared by `op` (a key of OPS:
    # `:eq`, `:in`, `:exists`, ...) with `value`, a Ruby value (String, Integer, Float,
    # BigDecimal, true/false, nil, Array, Hash) encoded to JSON and sent as a bound
    # parameter. `:exists` and `:not_exists` take no value.
    def where(sql_or_path, op = UNSET, value = UNSET)
      if op.equal?(UNSET)
        return call(:fw_query_where_sql, sql_or_path)
      end

      code = OPS[op.is_a?(String) ? op.downcase.to_sym : op]
      unless code
        raise InvalidArgumentError.new("where: #{op.inspect} is not an operator (one of " \
                                       "#{OPS.keys.join(", ")})", code: -1, status: "FW_E_INVALID_ARGUMENT")
      end
      if value.equal?(UNSET)
        unless %i[exists not_exists].include?(OPS.key(code))
          raise InvalidArgumentError.new("where: operator #{op.inspect} needs a value",
                                         code: -1, status: "FW_E_INVALID_ARGUMENT")
        end
        return call(:fw_query_where, sql_or_path, code, nil)
      end
      call(:fw_query_where, sql_or_path, code, FraiseqlWire.to_json(value))
    end

    # Add a SQL predicate whose `$1..$n` are bound to `values` (fw_query_where_params):
    # each fragment numbers its own parameters. Values are sent as text: a String as is,
    # true/false, numbers (Integer, Float, BigDecimal) as their decimal text, an Array or
    # Hash as JSON, nil as SQL NULL; the server infers each parameter's type from the SQL.
    def where_params(sql_predicate, values = [])
      texts = values.map { |v| v.nil? ? nil : FraiseqlWire.param_text(v) }
      bufs = texts.map { |t| t && FFI::MemoryPointer.from_string(t) }
      arr = FFI::MemoryPointer.new(:pointer, [bufs.size, 1].max)
      bufs.each_with_index { |b, i| arr.put_pointer(i * FFI::Pointer.size, b || FFI::Pointer::NULL) }
      call(:fw_query_where_params, sql_predicate, bufs.size, arr)
    end

    # Add an ORDER BY term on the value at a JSON pointer (fw_query_order_by_path): `kind`
    # `:text` (optionally in `collation`) or `:numeric`; `dir` `:asc` or `:desc`. Rows
    # without a value there sort as NULL (last ascending).
    def order_by_path(json_pointer, kind = :text, collation: nil, dir: :asc)
      k = ORDER_KINDS[kind]
      d = { asc: 0, desc: 1 }[dir]
      unless k && d
        raise InvalidArgumentError.new("order_by_path: kind #{kind.inspect} (:text, :numeric) " \
                                       "or dir #{dir.inspect} (:asc, :desc) is not valid",
                                       code: -1, status: "FW_E_INVALID_ARGUMENT")
      end
      call(:fw_query_order_by_path, json_pointer, k, collation, d)
    end

    # Add an ORDER BY term: a trusted SQL expression, an optional collation.
    def order_by(sql_expr, collation: nil, desc: false)
      call(:fw_query_order_by, sql_expr, collation, desc ? 1 : 0)
    end

    def limit(n)
      call(:fw_query_limit, n)
    end

    def offset(n)
      call(:fw_query_offset, n)
    end

    def chunk_size(rows)
      call(:fw_query_chunk_size, rows)
    end

    def adaptive_chunking(on = true, min_rows: 16, max_rows: 1024)
      call(:fw_query_adaptive_chunking, on, min_rows, max_rows)
    end

    # Read the result as `partitions` disjoint parts over as many connections at once, merged
    # into one stream (fw_query_parallel; 1 is serial). A plain table is split by block
    # ranges; any other source (a view) needs `partition_by:`, an integer SQL expression over
    # its columns such as its key. With order_by the parts are merged in order (text keys
    # need collation: "C"). See the library's docs/parallel.md.
    def parallel(partitions, partition_by: nil)
      call(:fw_query_parallel, FraiseqlWire.unsigned(partitions, "parallel", 2**32 - 1))
      call(:fw_query_partition_by, partition_by) if partition_by
      self
    end

    def max_memory(bytes, warn_ratio: 0.8, fail_ratio: 1.0)
      call(:fw_query_max_memory, bytes, warn_ratio, fail_ratio)
    end

    # How many bytes of chunks the reader queues ahead of a slower consumer before it stops
    # reading the socket (default 512 KiB, at least 1).
    def read_ahead(bytes)
      call(:fw_query_read_ahead, FraiseqlWire.unsigned(bytes, "read_ahead", 2**64 - 1))
    end

    # The longest wait (seconds, precision 1 µs) before a socket read on a steady
    # server-bound stream, so that one read takes several packets (default 0.001; 0 reads
    # every packet at once; at most 0.1).
    def read_coalesce(seconds)
      us = FraiseqlWire.unsigned(FraiseqlWire.seconds_to_us(seconds, "read_coalesce"), "read_coalesce",
                                 2**32 - 1)
      call(:fw_query_read_coalesce, us)
    end

    # How long `stream` waits (seconds) for the server's first answer before it returns the
    # stream anyway (default 0.02; nil: as long as it takes; 0: no wait, one look at what has
    # arrived; at most 3600). A query slower than that is returned undescribed: its errors
    # (a missing relation, a wrong result shape) are then raised by the stream's iteration.
    def describe_wait(seconds)
      ms = if seconds.nil?
             -1
           else
             # whole microseconds, then milliseconds rounded up
             FraiseqlWire.unsigned(-(-FraiseqlWire.seconds_to_us(seconds, "describe_wait") / 1000),
                                   "describe_wait", 2**63 - 1)
           end
      call(:fw_query_describe_wait, ms)
    end

    # Execute the query. Returns the Stream; with a block, yields it and closes it after.
    # `parse: true` yields parsed values (JSON.parse) instead of JSON text; `batch_size` and
    # `max_bytes` bound the rows fetched per call into the library.
    def stream(batch_size: 256, parse: false, max_bytes: 1 << 20)
      out = FFI::MemoryPointer.new(:pointer)
      @h.call(:fw_query_execute, out)
      s = Stream.new(out.read_pointer, @client, batch_size, parse: parse, max_bytes: max_bytes)
      return s unless block_given?

      begin
        yield s
      ensure
        s.close
      end
    end

    def close
      @h.close
    end

    def closed?
      @h.closed?
    end

    private

    def call(fn, *args)
      @h.call(fn, *args)
      self
    end
  end

  # A running query's rows. `each` yields each row and, without a block, returns an
  # Enumerator; `each_batch` yields an Array of rows per call into the library. Rows are
  # UTF-8 Strings of JSON text, or parsed values (JSON.parse) with `stream(parse: true)`.
  # Each call into the library returns one block of rows (fw_stream_next_block), copied out
  # once and split into rows in one call. Iterating a paused stream yields the buffered
  # rows, then waits until the stream is resumed (by another thread, or its pause timeout).
  class Stream
    include Enumerable

    Stats = Struct.new(:state, *Lib::STATS_FIELDS, keyword_init: true)

    def initialize(raw, client, batch_size = 256, parse: false, max_bytes: 1 << 20)
      FraiseqlWire.count_handle(:stream, 1)
      @h = Handle.new(StreamPtr.new(raw), "stream", wake: :fw_stream_cancel)
      @client = client
      @cap = [batch_size.to_i, 1].max
      @max_bytes = [max_bytes.to_i, 0].max
      @parse = parse
      @block = Lib::Block.new
      @pending = []
      @done = false
    end

    def each(&block)
      return enum_for(:each) unless block

      unless @pending.empty?
        rows = @pending
        @pending = []
        rows.each(&block)
      end
      # Rows straight from each block's text (String#each_line on NUL: no Array in between),
      # unless parsed.
      while (text = next_text)
        if text.is_a?(Array)
          text.each(&block)
        else
          text.each_line(NUL, chomp: true, &block)
        end
      end
      self
    end

    # Yields the rows an Array at a time (one Array per block from the library).
    def each_batch
      return enum_for(:each_batch) unless block_given?

      unless @pending.empty?
        rows = @pending
        @pending = []
        yield rows
      end
      while (rows = next_batch)
        yield rows
      end
      self
    end

    # The next row, or nil at the end of the stream (with `parse: true` a JSON null row is
    # nil too: use `each`). With `timeout` (seconds), raises FraiseqlWire::TimeoutError
    # when no row came in time.
    def next_row(timeout: nil)
      return @pending.shift unless @pending.empty?

      rows = next_batch(timeout: timeout)
      return nil unless rows

      @pending = rows
      @pending.shift
    end

    # The next Array of rows, or nil at the end. Waits while the stream is paused.
    def next_batch(timeout: nil)
      fetch_until(timeout) { rows_of_block }
    end

    # The next block for each: its text with every row followed by its NUL (each_line's
    # separator), or, parsed, the Array of values; nil at the end.
    def next_text # :nodoc:
      fetch_until(nil) { text_of_block }
    end

    def fetch_until(timeout) # :nodoc:
      deadline = timeout && (Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout)
      loop do
        return nil if @done

        wait = deadline ? [((deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)) * 1000).to_i, 0].max : -1
        code = fetch(wait)
        return yield if code == OK

        case code
        when PAUSED
          raise TimeoutError, "the stream is paused" if deadline && Process.clock_gettime(Process::CLOCK_MONOTONIC) >= deadline

          sleep 0.005
        when TIMEOUT
          raise TimeoutError, "no row within #{timeout}s"
        end
      end
    end

    # Stop reading the socket (the server blocks); buffered rows can still be consumed.
    def pause(reason = nil)
      if reason
        @h.call(:fw_stream_pause_with_reason, reason)
      else
        @h.call(:fw_stream_pause)
      end
      self
    end

    def resume
      @h.call(:fw_stream_resume)
      self
    end

    # A pause longer than `seconds` resumes by itself (nil/0: no limit).
    def pause_timeout=(seconds)
      ms = seconds.nil? || seconds.zero? ? 0 : [(seconds * 1000).to_i, 1].max
      @h.call(:fw_stream_set_pause_timeout, ms)
    end

    # Cancel the query; callable from any thread, never blocks. Iteration then raises
    # CancelledError.
    def cancel
      @h.call(:fw_stream_cancel)
      self
    end

    # :running, :paused, :completed, :failed or :cancelled.
    def state
      @h.use { |ptr| STATES.fetch(Lib.fw_stream_state_snapshot(ptr), :invalid) }
    end

    # A Stats snapshot (callable from any thread).
    def stats
      s = Lib::Stats.new
      s[:struct_size] = Lib::Stats.size
      @h.call(:fw_stream_stats, s)
      values = Lib::STATS_FIELDS.to_h { |f| [f, s[f]] }
      Stats.new(state: STATES.fetch(s[:state], :invalid), **values)
    end

    # Free the stream; a running query is cancelled. Idempotent, and safe from any thread:
    # a thread waiting for rows is woken up (and raises CancelledError).
    def close
      @h.close
    end

    def closed?
      @h.closed?
    end

    private

    # One call into the library; the block stays in @block until the next one.
    def fetch(timeout_ms)
      code = @h.use do |ptr|
        code = Lib.fw_stream_next_block(ptr, @block, @cap, @max_bytes, timeout_ms)
        raise FraiseqlWire.error_for(code, Lib.fw_stream_error(ptr)) if code.negative?

        code
      end
      @done = true if code == DONE
      code
    end

    NUL = "\0"
    COMMA = ","

    # The block's rows: one copy of it, then one split on NUL (no row holds a NUL byte: the
    # library guarantees it; were the pieces not n, the offsets would cut them). Parsed: the
    # block as one JSON array.
    def rows_of_block
      n = @block[:n]
      text = @block[:data].read_bytes(@block[:len] - 1).force_encoding(Encoding::UTF_8)
      return JSON.parse("[#{text.tr(NUL, COMMA)}]") if @parse

      rows = text.split(NUL, -1)
      rows.size == n ? rows : rows_by_offsets(text, n)
    end

    # each's form of the block: its text with every row followed by its NUL (the separator of
    # each_line), or, parsed, the Array of values.
    def text_of_block
      return rows_of_block if @parse

      @block[:data].read_bytes(@block[:len]).force_encoding(Encoding::UTF_8)
    end

    def rows_by_offsets(text, n)
      ptr = @block[:offsets]
      offsets = FFI.type_size(:size_t) == 8 ? ptr.read_array_of_uint64(n + 1) : ptr.read_array_of_uint32(n + 1)
      Array.new(n) { |i| text.byteslice(offsets[i], offsets[i + 1] - offsets[i] - 1) }
    end
  end

  # Raised by Stream#next_row when its timeout elapses.
  class TimeoutError < StandardError; end
end
