#!/usr/bin/perl
# An RFC 1413 query made with POE::Component::Client::Ident (Debian
# libpoe-component-client-ident-perl), used by test/interop/poe-client.test.ts.
#
#   poe-ident.pl <host> <identPort> <serverPort> <clientPort>
#
# The component asks the ident server at <host>:<identPort> about the
# connection between <host>:<serverPort> (its PeerAddr/PeerPort) and our
# <clientPort> (SockPort); it needs no real connection when given the ports.
# Prints one tab-separated line for the test to parse:
#   USERID <opsys> <userid>
#   ERROR  <error type>
# and exits 0.
use strict;
use warnings;
use POE qw(Component::Client::Ident);

die "usage: poe-ident.pl <host> <identPort> <serverPort> <clientPort>\n" unless @ARGV == 4;
my ( $host, $identPort, $serverPort, $clientPort ) = @ARGV;
$| = 1;

my $client = POE::Component::Client::Ident->spawn('ident-client');

POE::Session->create(
    inline_states => {
        _start => sub {
            $_[KERNEL]->post(
                'ident-client' => query => (
                    PeerAddr  => $host,
                    PeerPort  => $serverPort,
                    SockAddr  => $host,
                    SockPort  => $clientPort,
                    IdentPort => $identPort,
                    TimeOut   => 10,
                )
            );
        },
        ident_client_reply => sub {
            my ( $query, $opsys, $userid ) = @_[ ARG0, ARG1, ARG2 ];
            print join( "\t", 'USERID', $opsys, $userid ), "\n";
            $_[KERNEL]->post( 'ident-client' => 'shutdown' );
        },
        ident_client_error => sub {
            my ( $query, $error ) = @_[ ARG0, ARG1 ];
            print join( "\t", 'ERROR', $error ), "\n";
            $_[KERNEL]->post( 'ident-client' => 'shutdown' );
        },
    },
);

POE::Kernel->run();
exit 0;
